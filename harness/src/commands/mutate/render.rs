//! The mutation report in words: each drill's score and every missed
//! mutant.

use super::{DrillScore, Outcome};

/// The score line: `score NAME: 100% (9 of 9 mutants killed; ...)`.
pub fn score_line(s: &DrillScore) -> String {
    let unviable = s.count(|o| matches!(o, Outcome::Unviable(_)));
    let equivalent = s.count(|o| matches!(o, Outcome::Equivalent(_)));
    let percent = s
        .percent()
        .map_or_else(|| "n/a".to_owned(), |p| format!("{p}%"));
    format!(
        "score {}: {percent} ({} of {} mutants killed, {} survived; {unviable} unviable and {equivalent} equivalent not counted)",
        s.drill,
        s.killed(),
        s.total(),
        s.total() - s.killed()
    )
}

/// Everything about one drill's mutants, for a person: each expectation,
/// each mutant with its outcome, the score line, the survivors again.
pub fn render(s: &DrillScore) -> String {
    let mut lines = vec![format!("mutate {} ({})", s.drill, s.file.display())];
    for x in &s.expects {
        let how = match (x.original.passed, x.original.kept, x.original.measured) {
            (false, ..) => "FAILED".to_owned(),
            (true, true, _) => "passed, kept".to_owned(),
            (true, false, Some(t)) => format!("passed, reached in {t:.3}s"),
            (true, false, None) => "passed".to_owned(),
        };
        lines.push(format!("  {:?}: {how}", x.name));
        if !x.original.passed {
            lines.push(format!(
                "    its mutants are not counted: the expectation itself failed: {}",
                x.original.message
            ));
            continue;
        }
        for j in &x.mutants {
            let why = match &j.outcome {
                Outcome::Unviable(w) | Outcome::Equivalent(w) => format!(": {w}"),
                Outcome::Missed => format!(": the judge passes it too: {}", j.message),
                Outcome::Caught => String::new(),
            };
            lines.push(format!(
                "    {:<10} {}: {}{why}",
                j.outcome.word(),
                j.mutant.kind.name(),
                j.mutant.change
            ));
        }
        for (kind, why) in &x.not_applicable {
            lines.push(format!("    {:<10} {}: {why}", "n/a", kind.name()));
        }
    }
    if s.oracle_expects > 0 {
        lines.push(format!(
            "  {} expectation(s) of the oracle judged, not mutated (the model wrote them)",
            s.oracle_expects
        ));
    }
    if !s.failed.is_empty() {
        lines.push(format!(
            "  the drill itself FAILED ({}): mutation testing judges a drill that passes",
            s.failed.join("; ")
        ));
    }
    lines.push(format!("  {}", score_line(s)));
    for (name, j) in s.survived() {
        lines.push(format!(
            "  survived: {name:?}: {}: {}: this expectation does not constrain it",
            j.mutant.kind.name(),
            j.mutant.change
        ));
    }
    lines.join("\n")
}
