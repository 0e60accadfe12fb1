//! The reference cannot drift: the parser knows exactly the fields and
//! kinds the schema types list, `docs/` holds what they generate, the
//! committed schemas are what `corodrill schema` prints, and every shipped
//! file validates against them while broken ones do not.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::*;
use crate::experiment::parse_recording;

/// The repository's root (the harness crate's parent).
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// With CORODRILL_BLESS=1 a stale generated file is rewritten instead of
/// failing: how a change to the types reaches `docs/`.
fn check_generated(path: &Path, want: &str) {
    let have = std::fs::read_to_string(path).unwrap_or_default();
    if have == want {
        return;
    }
    if std::env::var_os("CORODRILL_BLESS").is_some() {
        std::fs::write(path, want).unwrap();
        return;
    }
    panic!(
        "{} is stale: it is generated from experiment/format.rs and inventory.rs; \
         run `CORODRILL_BLESS=1 cargo test -p corodrill --lib reference` and commit it",
        path.display()
    );
}

/// A sample value for a schema: its first example, its const, or the
/// first of what it allows.
fn example(root: &Value, s: &Value) -> Value {
    if let Some(e) = s
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return e.clone();
    }
    if let Some(c) = s.get("const") {
        return c.clone();
    }
    if let Some(e) = s
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return e.clone();
    }
    let r = resolve(root, s);
    if !std::ptr::eq(r, s) {
        return example(root, r);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(first) = s.get(key).and_then(Value::as_array).and_then(|a| a.first()) {
            return example(root, first);
        }
    }
    match s.get("type").and_then(Value::as_str) {
        Some("boolean") => Value::Bool(false),
        Some("integer") => Value::from(1),
        _ => panic!("no example for {s}: give the field an `examples`"),
    }
}

fn toml_line(key: &str, value: &Value) -> String {
    let v: toml::Value = toml::Value::try_from(value).expect("a TOML value");
    format!("{key} = {v}\n")
}

/// A fault of `kind` with every field the schema lists, at its example.
fn whole_fault(root: &Value, kind: &str, schema: &Value) -> String {
    let mut out = String::from("[[fault]]\n");
    let props = schema["properties"].as_object().expect("properties");
    for (name, p) in props {
        let value = match name.as_str() {
            "kind" => Value::from(kind),
            "id" => Value::from("f"),
            _ => example(root, p),
        };
        out.push_str(&toml_line(name, &value));
    }
    out
}

const HEAD: &str = "name = \"t\"\nnodes = 3\n";

fn keys(asked: &BTreeSet<String>, table: &str) -> BTreeSet<String> {
    asked
        .iter()
        .filter_map(|k| k.strip_prefix(&format!("{table}.")).map(str::to_owned))
        .collect()
}

fn props(root: &Value, s: &Value) -> BTreeSet<String> {
    resolve(root, s)["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn the_parser_knows_every_fault_kind_and_field_the_reference_lists_and_no_other() {
    let root = schema_of(Format::Experiment);
    let fault = resolve(&root, &root["properties"]["fault"]["items"]);
    let kinds = variants(&root, fault, "kind");
    let listed: BTreeSet<&str> = kinds.iter().map(|(k, _)| k.as_str()).collect();
    let parser_kinds: BTreeSet<&str> = crate::experiment::FAULT_KINDS.split(", ").collect();
    assert_eq!(listed, parser_kinds, "fault kinds: reference vs parser");
    for (kind, schema) in &kinds {
        let text = format!("{HEAD}{}", whole_fault(&root, kind, schema));
        let (result, asked) = parse_recording(Path::new("t.toml"), &text);
        if let Err(e) = &result {
            panic!("a {kind} fault with every documented field is refused:\n{text}\n{e:?}");
        }
        assert_eq!(
            keys(&asked, "fault"),
            props(&root, schema),
            "fields of a {kind} fault: the parser's (left) vs the reference's (right)"
        );
    }
    let text =
        format!("{HEAD}[[fault]]\nid = \"f\"\nkind = \"no-such-kind\"\nnodes = [\"pve1\"]\n");
    assert!(parse_recording(Path::new("t.toml"), &text).0.is_err());
}

#[test]
fn the_parser_knows_every_expect_and_watch_field_the_reference_lists_and_no_other() {
    let root = schema_of(Format::Experiment);
    let text = format!(
        "{HEAD}[[fault]]\nid = \"cut\"\nkind = \"isolate\"\nnodes = [\"pve3\"]\n\
         [[watch]]\nresource = \"svc\"\n\
         [[expect]]\nafter = \"cut\"\nnodes = \"all\"\nquorate = true\nwithin = \"10s\"\n"
    );
    let (result, asked) = parse_recording(Path::new("t.toml"), &text);
    assert!(result.is_ok(), "{result:?}");
    let expect = &root["properties"]["expect"]["items"];
    assert_eq!(
        keys(&asked, "expect"),
        props(&root, expect),
        "[[expect]] fields"
    );

    // Every documented field of [[expect]] and [[watch]] accepted, one at
    // a time beside what it needs.
    for field in props(&root, expect) {
        let p = &resolve(&root, expect)["properties"][field.as_str()];
        let base = match field.as_str() {
            "resource" | "running_on" | "running" | "moved" => {
                "after = \"cut\"\nnodes = \"all\"\nwithin = \"10s\"\nresource = \"svc\"\n"
            }
            _ => "after = \"cut\"\nnodes = \"all\"\nwithin = \"10s\"\nquorate = true\n",
        };
        let mut entry = String::from(base);
        let own = ["after", "nodes", "within", "quorate", "resource"];
        if !own.contains(&field.as_str()) {
            entry.push_str(&toml_line(&field, &example(&root, p)));
        }
        if field == "resource" {
            entry.push_str("moved = true\n");
        }
        let text = format!(
            "{HEAD}[[fault]]\nid = \"cut\"\nkind = \"isolate\"\nnodes = [\"pve3\"]\n\
             [[watch]]\nresource = \"svc\"\n[[expect]]\n{entry}"
        );
        let result = crate::experiment::parse(Path::new("t.toml"), &text);
        assert!(result.is_ok(), "[[expect]] {field}:\n{text}\n{result:?}");
    }

    // The parser's own list in its unknown-field error is the same.
    let text = format!(
        "{HEAD}[[fault]]\nid = \"cut\"\nkind = \"isolate\"\nnodes = [\"pve3\"]\n\
         [[expect]]\nafter = \"cut\"\nnodes = \"all\"\nquorate = true\nwithin = \"10s\"\nzzz = 1\n"
    );
    let errors = crate::experiment::parse(Path::new("t.toml"), &text).expect_err("zzz refused");
    let listed: BTreeSet<String> = errors[0]
        .message
        .split("(known: ")
        .nth(1)
        .unwrap_or("")
        .trim_end_matches(')')
        .split(", ")
        .map(str::to_owned)
        .collect();
    assert_eq!(
        listed,
        props(&root, expect),
        "the known fields [[expect]]'s error names"
    );

    // [[watch]]: its duration fields are taken by hand, the rest by serde,
    // whose refusal of an unknown field names every field it knows.
    let watch = &root["properties"]["watch"]["items"];
    let text = format!(
        "{HEAD}[[fault]]\nid = \"cut\"\nkind = \"isolate\"\nnodes = [\"pve3\"]\n\
         [[watch]]\nresource = \"svc\"\nno_such_field = 1\n"
    );
    let (result, asked) = parse_recording(Path::new("t.toml"), &text);
    let errors = result.expect_err("an unknown [[watch]] field is refused");
    let mut known = serde_known(&errors[0].message);
    known.extend(keys(&asked, "watch"));
    assert_eq!(known, props(&root, watch), "[[watch]] fields");
    let mut whole = String::from("[[watch]]\nkind = \"probe\"\n");
    for field in props(&root, watch) {
        if field != "kind" {
            let p = &resolve(&root, watch)["properties"][field.as_str()];
            whole.push_str(&toml_line(&field, &example(&root, p)));
        }
    }
    let text =
        format!("{HEAD}[[fault]]\nid = \"cut\"\nkind = \"isolate\"\nnodes = [\"pve3\"]\n{whole}");
    let result = crate::experiment::parse(Path::new("t.toml"), &text);
    assert!(result.is_ok(), "{text}\n{result:?}");
}

/// The fields serde lists in "unknown field `x`, expected one of `a`, `b`".
fn serde_known(message: &str) -> BTreeSet<String> {
    let list = message
        .split("expected one of")
        .nth(1)
        .or_else(|| message.split("expected").nth(1))
        .unwrap_or("");
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_top_level_requires_and_invariants_are_what_the_parser_reads() {
    let root = schema_of(Format::Experiment);
    let fault = "[[fault]]\nid = \"cut\"\nkind = \"isolate\"\nnodes = [\"pve3\"]\n";
    let cases = [
        (
            "top level",
            format!("{HEAD}no_such_field = 1\n{fault}"),
            &root,
        ),
        (
            "[requires]",
            format!("{HEAD}{fault}[requires]\nno_such_field = 1\n"),
            resolve(&root, &root["properties"]["requires"]),
        ),
        (
            "[invariants]",
            format!("{HEAD}{fault}[invariants]\nno_such_field = 1\n"),
            resolve(&root, &root["properties"]["invariants"]),
        ),
    ];
    for (what, text, schema) in cases {
        let errors = crate::experiment::parse(Path::new("t.toml"), &text)
            .expect_err("an unknown field is refused");
        assert_eq!(
            serde_known(&errors[0].message),
            props(&root, schema),
            "{what}"
        );
        let mut whole = String::new();
        for field in props(&root, schema) {
            if ["fault", "expect", "watch", "requires", "invariants"].contains(&field.as_str()) {
                continue;
            }
            let p = &resolve(&root, schema)["properties"][field.as_str()];
            whole.push_str(&toml_line(&field, &example(&root, p)));
        }
        let text = match what {
            "top level" => format!("{whole}{fault}"),
            "[requires]" => format!("{HEAD}[requires]\n{whole}{fault}"),
            _ => format!("{HEAD}[invariants]\n{whole}{fault}"),
        };
        let result = crate::experiment::parse(Path::new("t.toml"), &text);
        assert!(
            result.is_ok(),
            "{what}: every field at its example:\n{text}\n{result:?}"
        );
    }
}

#[test]
fn every_power_driver_parses_with_every_documented_field() {
    let root = schema_of(Format::Inventory);
    let node = resolve(&root, &root["properties"]["node"]["items"]);
    let power = resolve(&root, &node["properties"]["power"]);
    let drivers = variants(&root, power, "driver");
    assert_eq!(drivers.len(), 7);
    for (driver, schema) in drivers {
        let mut table = toml::Table::new();
        for field in props(&root, schema) {
            let p = &schema["properties"][field.as_str()];
            let v = if field == "driver" {
                Value::from(driver.as_str())
            } else {
                example(&root, p)
            };
            table.insert(field, toml::Value::try_from(&v).expect("a TOML value"));
        }
        let text = format!(
            "name = \"c\"\n[[node]]\nname = \"pve1\"\nconnect = \"true\"\nlinks = {{ ring0 = \"10.0.0.1\" }}\npower = {}\n",
            toml::Value::Table(table)
        );
        let inv = crate::inventory::Inventory::from_toml(&text);
        assert!(inv.is_ok(), "{driver}:\n{text}\n{inv:?}");
        assert_eq!(inv.unwrap().nodes[0].power.driver(), driver);
    }
}

#[test]
fn docs_hold_the_generated_reference() {
    let files = [
        "docs/experiments.md",
        "docs/inventories.md",
        "docs/reports.md",
        "docs/errors.md",
    ];
    for file in files {
        let path = repo().join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let (want, _) = regenerate(&text);
        check_generated(&path, &want);
    }
    // Every generated block sits in one of them.
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(repo().join(file)).unwrap_or_default();
        found.extend(regenerate(&text).1);
    }
    for (name, _) in generated_blocks() {
        assert!(
            found.contains(&name),
            "no `<!-- generated: {name} -->` block in docs/"
        );
    }
}

#[test]
fn committed_schemas_are_what_corodrill_schema_prints() {
    for format in Format::ALL {
        let path = repo().join(format!("docs/schema/{}.json", format.name()));
        check_generated(&path, &schema(format));
    }
}

/// Every shipped drill and example inventory: `(path, format)`.
fn shipped() -> Vec<(PathBuf, Format)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "toml") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo().join("experiments"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let format = if p.parent().is_some_and(|d| d.ends_with("inventories")) {
                Format::Inventory
            } else {
                Format::Experiment
            };
            (p, format)
        })
        .collect()
}

fn validator(format: Format) -> jsonschema::Validator {
    let path = repo().join(format!("docs/schema/{}.json", format.name()));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| schema(format));
    let value: Value = serde_json::from_str(&text).expect("the schema is JSON");
    jsonschema::validator_for(&value).expect("a valid JSON Schema")
}

fn as_json(text: &str) -> Value {
    let t: toml::Table = toml::from_str(text).expect("TOML");
    serde_json::to_value(t).expect("JSON")
}

#[test]
fn every_shipped_file_names_its_schema_and_validates_against_it() {
    let files = shipped();
    assert!(files.len() > 20, "shipped files found: {}", files.len());
    for (path, format) in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let first = text.lines().next().unwrap_or("");
        let dir = path.parent().unwrap();
        let schema_path = first
            .strip_prefix("#:schema ")
            .unwrap_or_else(|| panic!("{}: the first line is not `#:schema PATH`", path.display()));
        let target = dir.join(schema_path.trim());
        let want = repo().join(format!("docs/schema/{}.json", format.name()));
        assert_eq!(
            target.canonicalize().ok(),
            want.canonicalize().ok(),
            "{}: `#:schema {}` is not docs/schema/{}.json",
            path.display(),
            schema_path,
            format.name()
        );
        let v = validator(format);
        let errors: Vec<String> = v
            .iter_errors(&as_json(&text))
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    }
}

#[test]
fn broken_files_fail_the_schema() {
    let experiment = validator(Format::Experiment);
    let fault = "[[fault]]\nid = \"cut\"\nkind = \"isolate\"\nnodes = [\"pve3\"]\n";
    let broken = [
        format!("nodes = 3\n{fault}"),                                  // no name
        format!("{HEAD}colour = \"red\"\n{fault}"),                     // unknown top-level key
        format!("{HEAD}[[fault]]\nid = \"f\"\nkind = \"melt\"\nnodes = [\"pve1\"]\n"), // unknown kind
        format!("{HEAD}[[fault]]\nid = \"f\"\nkind = \"kill\"\nnodes = [\"pve1\"]\nlinks = [1]\n"), // field of another kind
        format!("{HEAD}[[fault]]\nid = \"f\"\nkind = \"link-down\"\nnodes = [\"pve1\"]\nlink = 9\n"), // link out of range
        format!("{HEAD}[[fault]]\nid = \"f\"\nkind = \"partition\"\ngroups = [[\"pve1\"], [\"pve2\", \"pve3\"]]\ndirection = \"sideways\"\n"),
        format!("{HEAD}[[fault]]\nid = \"f\"\nkind = \"degrade\"\nnodes = [\"pve1\"]\ndelay = \"40 parsecs!\"\n"),
        format!("{HEAD}{fault}[[expect]]\nafter = \"cut\"\nnodes = \"all\"\nquorate = \"yes\"\nwithin = \"10s\"\n"),
        format!("{HEAD}{fault}[[expect]]\nafter = \"cut\"\nnodes = \"all\"\nquorate = true\n"), // no within
        format!("{HEAD}{fault}[[expect]]\nafter = \"cut\"\nnodes = \"some\"\nquorate = true\nwithin = \"10s\"\n"),
        format!("{HEAD}{fault}[invariants]\nsplit_brain = \"maybe\"\n"),
        format!("{HEAD}{fault}[[watch]]\nresource = \"svc\"\nkind = \"systemd\"\n"),
    ];
    for text in &broken {
        assert!(
            !experiment.is_valid(&as_json(text)),
            "the schema accepts a broken experiment:\n{text}"
        );
        // The parser refuses them too: the schema is no looser than it
        // where both look.
        assert!(
            crate::experiment::parse(Path::new("t.toml"), text).is_err(),
            "{text}"
        );
    }
    let inventory = validator(Format::Inventory);
    let node = "name = \"pve1\"\nconnect = \"true\"\n";
    let broken = [
        format!("name = \"c\"\n[[node]]\n{node}links = {{ ring0 = \"10.0.0.1\" }}\n"), // no power
        format!("name = \"c\"\n[[node]]\n{node}links = {{ link0 = \"10.0.0.1\" }}\npower = {{ driver = \"lab\", lab = \"l\" }}\n"),
        format!("name = \"c\"\n[[node]]\n{node}links = {{ ring0 = \"10.0.0.1\" }}\npower = {{ driver = \"ipmi\", host = \"h\", user = \"u\", password = \"hunter2\" }}\n"),
        format!("name = \"c\"\n[[node]]\n{node}links = {{ ring0 = \"10.0.0.1\" }}\npower = {{ driver = \"wol\" }}\n"),
    ];
    for text in &broken {
        assert!(
            !inventory.is_valid(&as_json(text)),
            "the schema accepts a broken inventory:\n{text}"
        );
        assert!(
            crate::inventory::Inventory::from_toml(text).is_err(),
            "{text}"
        );
    }
}

/// An inventory of `nodes` nodes named as the docs name them (pve1...),
/// each with `links` corosync links.
fn docs_inventory(nodes: usize, links: usize) -> crate::inventory::Inventory {
    let mut text = String::from("name = \"docs\"\n");
    for n in 1..=nodes {
        let rings: Vec<String> = (0..links)
            .map(|l| format!("ring{l} = \"10.{l}.0.{n}\""))
            .collect();
        text.push_str(&format!(
            "[[node]]\nname = \"pve{n}\"\nconnect = \"true\"\nlinks = {{ {} }}\npower = {{ driver = \"lab\", lab = \"docs\" }}\n",
            rings.join(", ")
        ));
    }
    crate::inventory::Inventory::from_toml(&text).expect("the docs' inventory")
}

/// Every ```toml block of `file` that is a whole experiment (a name and
/// nodes at its top).
fn whole_examples(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join(file)).unwrap_or_default();
    text.split("```toml\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap_or("").to_owned())
        .filter(|block| {
            let whole = format!("\n{block}");
            let top = whole.split("\n[").next().unwrap_or("");
            top.contains("name = ") && top.contains("nodes = ")
        })
        .collect()
}

#[test]
fn complete_examples_in_docs_are_valid_experiments() {
    // Every whole experiment in docs/ parses, and plans on a cluster of
    // its shape: the reference's examples are drills that work.
    let mut checked = 0;
    for file in ["docs/experiments.md", "README.md"] {
        for block in whole_examples(file) {
            let result = crate::experiment::parse(Path::new(file), &block);
            assert!(result.is_ok(), "{file}:\n{block}\n{result:?}");
            let Ok(e) = result else { continue };
            let links = e.requires.links.unwrap_or(1).max(1);
            let planned = crate::plan::plan(&e, &docs_inventory(e.nodes, links));
            assert!(planned.is_ok(), "{file}: {}: {planned:?}", e.name);
            checked += 1;
        }
    }
    assert!(checked >= 3, "whole examples checked: {checked}");
}

/// The issue's test of the docs: a newcomer with only the docs writes a
/// drill with a one-way cut on link 1, a 40 ms delay on another node and
/// a failover expectation. docs/experiments.md walks through one; it is
/// checked here to be that drill.
#[test]
fn the_docs_walk_through_a_one_way_cut_a_delay_and_a_failover() {
    use crate::experiment::{FaultKind, ResourceWant};
    let drill = whole_examples("docs/experiments.md")
        .into_iter()
        .filter_map(|b| crate::experiment::parse(Path::new("docs/experiments.md"), &b).ok())
        .find(|e| e.name == "one-way-link-1-delay-failover")
        .expect("docs/experiments.md's drill from scratch");
    let cut = drill
        .faults
        .iter()
        .find_map(|f| match &f.kind {
            FaultKind::Partition {
                groups,
                links: Some(links),
                one_way: true,
            } if links == &[1] => Some(groups[0].clone()),
            _ => None,
        })
        .expect("a one-way cut on link 1");
    let delayed = drill
        .faults
        .iter()
        .find_map(|f| match &f.kind {
            FaultKind::Degrade {
                nodes,
                delay: Some(d),
                ..
            } if *d == std::time::Duration::from_millis(40) => Some(nodes.clone()),
            _ => None,
        })
        .expect("a 40 ms delay");
    assert!(
        delayed.iter().all(|n| !cut.contains(n)),
        "the delay is on another node"
    );
    assert!(drill
        .expects
        .iter()
        .any(|x| x.resource.as_ref().is_some_and(|r| matches!(
            &r.want,
            ResourceWant::RunningOn(on) if on.iter().all(|n| !cut.contains(n))
        ))));
}

#[test]
fn every_event_kind_is_in_the_reference() {
    let kinds: Vec<String> = event_tables()
        .iter()
        .skip(1)
        .map(|t| t.id.clone())
        .collect();
    for kind in [
        "drill.start",
        "quorum",
        "stall",
        "expect.pass",
        "drill.disturbed",
    ] {
        assert!(
            kinds.contains(&format!("event.{kind}")),
            "{kind} in {kinds:?}"
        );
    }
}

#[test]
fn explain_finds_kinds_fields_and_drivers() {
    let partition = explain("partition").expect("partition");
    assert!(
        partition.contains("direction") && partition.contains("one-way"),
        "{partition}"
    );
    let within = explain("within").expect("within");
    assert!(within.contains("[[expect]]"), "{within}");
    let command = explain("command").expect("command");
    assert!(
        command.contains("a fault kind") && command.contains("a power driver"),
        "{command}"
    );
    assert!(explain("watch.nodes")
        .expect("watch.nodes")
        .contains("probe"));
    assert!(explain("[requires]").is_some());
    assert!(explain("no-such-thing").is_none());
    for t in topics() {
        assert!(explain(&t).is_some(), "{t}");
    }
}

#[test]
fn every_error_has_an_example_that_makes_it_and_only_it() {
    for &code in ErrorCode::ALL {
        match example_messages(code) {
            Some(messages) => assert_eq!(
                codes_in(&messages),
                vec![code],
                "{}'s example makes {messages:#?}",
                code.name()
            ),
            None => match code.entry().example {
                Example::Message(m) => assert!(m.ends_with(&code.hint()), "{m}"),
                other => panic!("{}: no messages from {other:?}", code.name()),
            },
        }
    }
}

/// Every `.rs` file of the harness but the catalogue and the reference.
fn sources() -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push((
                    path.clone(),
                    std::fs::read_to_string(&path).unwrap_or_default(),
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo().join("harness/src"), &mut out);
    out.retain(|(p, _)| {
        !p.ends_with("errors.rs")
            && !p.ends_with("reference.rs")
            && !p.ends_with("reference/tests.rs")
    });
    out
}

/// The catalogue cannot drift from the code: every entry names a variant
/// that some stage raises (the match in `errors.rs` is exhaustive, so
/// every variant has an entry), and no error's name hides an entry of
/// the formats from `explain`.
#[test]
fn every_error_in_the_catalogue_is_raised_and_every_raised_error_is_in_it() {
    let sources = sources();
    assert!(sources.len() > 20, "{} sources", sources.len());
    for &code in ErrorCode::ALL {
        let raised = format!("ErrorCode::{}", code.variant());
        assert!(
            sources.iter().any(|(_, text)| text.contains(&raised)),
            "{} ({raised}) is in the catalogue but no stage raises it: remove it, or raise it",
            code.name()
        );
        assert_eq!(ErrorCode::from_name(code.name()), Some(code));
    }
    // A message that names an error by hand names a real one.
    for (path, text) in &sources {
        for hint in text.split("corodrill explain ").skip(1) {
            let name: String = hint
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            if name.contains('-') {
                assert!(
                    ErrorCode::from_name(&name).is_some() || explain(&name).is_some(),
                    "{}: `corodrill explain {name}` names nothing",
                    path.display()
                );
            }
        }
    }
    let formats: Vec<String> = experiment_tables()
        .into_iter()
        .chain(inventory_tables())
        .flat_map(|t| {
            let short = t.id.rsplit('.').next().unwrap_or(&t.id).to_owned();
            std::iter::once(short).chain(t.fields.into_iter().map(|f| f.name))
        })
        .collect();
    for &code in ErrorCode::ALL {
        assert!(
            !formats.contains(&code.name().to_owned()),
            "{} is also a table or field name",
            code.name()
        );
    }
}

#[test]
fn explain_finds_errors() {
    let entry = explain("unknown-field").expect("unknown-field");
    assert!(
        entry.contains("heal_afer") && entry.contains("Fix:"),
        "{entry}"
    );
    assert_eq!(explain("error[bad-link]"), explain("bad-link"));
    assert!(explain("would-fence")
        .expect("would-fence")
        .contains("--allow-fencing"));
}
