//! The formats' reference, generated: the JSON Schemas of experiment and
//! inventory files, and each entry of the reference (a fault kind, a
//! field, a power driver, an error) as Markdown. One source, the serde
//! types of `experiment::format` and `inventory` (their doc comments are
//! the entries' text) and the catalogue of `errors`, for `corodrill
//! schema`, `corodrill explain` and the generated tables in `docs/`. Pure.

use schemars::{generate::SchemaSettings, JsonSchema};
use serde_json::{Map, Value};

use crate::errors::{ErrorCode, Example, EXAMPLE_INVENTORY};

/// The two file formats that have a schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Experiment,
    Inventory,
}

impl Format {
    pub const ALL: [Format; 2] = [Format::Experiment, Format::Inventory];

    pub fn name(self) -> &'static str {
        match self {
            Format::Experiment => "experiment",
            Format::Inventory => "inventory",
        }
    }
}

fn schema_value<T: JsonSchema>() -> Value {
    // draft-07: what taplo (Even Better TOML, Helix, Neovim) validates with.
    let generator = SchemaSettings::draft07().into_generator();
    let mut value = generator.into_root_schema_for::<T>().to_value();
    strip_null(&mut value);
    value
}

/// TOML has no null: an optional field is one left out, not one that may
/// be null, so `null` is taken out of every type schemars gave an Option.
fn strip_null(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(any)) = map.get_mut("anyOf") {
                let null = serde_json::json!({"type": "null"});
                if any.contains(&null) {
                    any.retain(|s| *s != null);
                    if any.len() == 1 {
                        // Beside a $ref, draft-07 ignores every other
                        // keyword (the description): keep it in allOf.
                        let only = any.remove(0);
                        map.remove("anyOf");
                        map.insert("allOf".into(), Value::Array(vec![only]));
                    }
                }
            }
            for v in map.values_mut() {
                strip_null(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strip_null),
        _ => {}
    }
}

/// The JSON Schema of a format, as a value.
pub fn schema_of(format: Format) -> Value {
    match format {
        Format::Experiment => schema_value::<crate::experiment::format::ExperimentFile>(),
        Format::Inventory => schema_value::<crate::inventory::Inventory>(),
    }
}

/// The JSON Schema of a format as `corodrill schema` prints it and
/// `docs/schema/*.json` holds it.
pub fn schema(format: Format) -> String {
    let mut text = serde_json::to_string_pretty(&schema_of(format))
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

/// One field of a table, as the reference lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// In words: "duration", "list of node names", "\"both\" or \"one-way\"".
    pub kind: String,
    pub required: bool,
    /// The doc comment: meaning, unit, default.
    pub description: String,
}

/// A table of a file (`[[expect]]`) or a variant of one (the `partition`
/// fault kind, the `ipmi` power driver), with its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// How `explain` and the tests name it: "expect", "fault.partition",
    /// "power.ipmi".
    pub id: String,
    /// How the file writes it: "[[expect]]", "kind = \"partition\"".
    pub title: String,
    pub description: String,
    pub fields: Vec<Field>,
}

fn defs(root: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    root.get("definitions")
        .and_then(Value::as_object)
        .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

/// The schema `s` stands for: a `$ref` or a one-element `allOf` followed.
fn resolve<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return defs(root).get(name).map_or(s, |d| resolve(root, d));
    }
    match s.get("allOf").and_then(Value::as_array) {
        Some(all) if all.len() == 1 => resolve(root, &all[0]),
        _ => s,
    }
}

/// A schema's type in words.
fn kind_of(root: &Value, s: &Value) -> String {
    // An optional field's schema is its type in a one-element allOf.
    if let Some([only]) = s.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
        return kind_of(root, only);
    }
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        match name {
            "Duration" => return "duration".into(),
            "LinkNumber" => return "link number (0 to 7)".into(),
            "Percent" => return "percentage".into(),
            "NodeSetFile" => return "\"all\" or list of node names".into(),
            _ => {}
        }
    }
    let s = resolve(root, s);
    if let Some(c) = s.get("const") {
        return c.to_string();
    }
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        let words: Vec<String> = values.iter().map(Value::to_string).collect();
        return words.join(" or ");
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            let words: Vec<String> = alts.iter().map(|a| kind_of(root, a)).collect();
            return words.join(" or ");
        }
    }
    match s.get("type").and_then(Value::as_str) {
        Some("array") => match s.get("items") {
            Some(items) => {
                let item = kind_of(root, items);
                match item.as_str() {
                    "string" => "list of strings".into(),
                    "link number (0 to 7)" => "list of link numbers (0 to 7)".into(),
                    _ => match item.strip_prefix("list of ") {
                        Some(inner) => format!("list of lists of {inner}"),
                        None => format!("list of ({item})"),
                    },
                }
            }
            None => "list".into(),
        },
        Some("object") => "table".into(),
        Some(t) => t.to_owned(),
        None => "any value".into(),
    }
}

/// A doc comment's text on one line per paragraph (tables want no line
/// breaks; paragraphs stay apart).
fn unwrap_text(text: &str) -> String {
    text.split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn description(s: &Value) -> String {
    unwrap_text(s.get("description").and_then(Value::as_str).unwrap_or(""))
}

/// The fields of an object schema, in the order written, but `skip`.
fn fields_of(root: &Value, s: &Value, skip: &[&str]) -> Vec<Field> {
    let s = resolve(root, s);
    let required: Vec<&str> = s
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(props) = s.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .filter(|(name, _)| !skip.contains(&name.as_str()))
        .map(|(name, p)| Field {
            name: name.clone(),
            kind: kind_of(root, p),
            required: required.contains(&name.as_str()),
            description: description(p),
        })
        .collect()
}

/// The variants of a tagged enum's schema: (tag value, variant schema).
fn variants<'a>(root: &'a Value, s: &'a Value, tag: &str) -> Vec<(String, &'a Value)> {
    let s = resolve(root, s);
    let alts = s
        .get("oneOf")
        .or_else(|| s.get("anyOf"))
        .and_then(Value::as_array);
    alts.map(|alts| {
        alts.iter()
            .filter_map(|v| {
                let value = v.pointer(&format!("/properties/{tag}/const"))?.as_str()?;
                Some((value.to_owned(), v))
            })
            .collect()
    })
    .unwrap_or_default()
}

fn property<'a>(root: &'a Value, s: &'a Value, name: &str) -> Option<&'a Value> {
    resolve(root, s).get("properties")?.get(name)
}

/// The item schema of an array property (`fault` -> one `[[fault]]`).
fn items<'a>(root: &'a Value, name: &str) -> Option<&'a Value> {
    let p = resolve(root, property(root, root, name)?);
    p.get("items").map(|i| resolve(root, i))
}

/// The fields every fault has, whatever its kind.
pub const FAULT_COMMON: [&str; 4] = ["id", "at", "heal_after", "allow_management_cut"];

/// Every table of the experiment format, in the reference's order.
pub fn experiment_tables() -> Vec<Table> {
    let root = schema_of(Format::Experiment);
    let mut tables = vec![Table {
        id: "experiment".into(),
        title: "top level".into(),
        description: description(&root),
        fields: fields_of(&root, &root, &[]),
    }];
    let fault = items(&root, "fault").cloned().unwrap_or(Value::Null);
    let kinds = variants(&root, &fault, "kind");
    if let Some((_, first)) = kinds.first() {
        let mut common = fields_of(&root, first, &[]);
        common.retain(|f| FAULT_COMMON.contains(&f.name.as_str()));
        tables.push(Table {
            id: "fault".into(),
            title: "[[fault]]".into(),
            description: description(&fault),
            fields: common,
        });
    }
    let mut skip = vec!["kind"];
    skip.extend(FAULT_COMMON);
    for (kind, schema) in &kinds {
        tables.push(Table {
            id: format!("fault.{kind}"),
            title: format!("kind = \"{kind}\""),
            description: description(schema),
            fields: fields_of(&root, schema, &skip),
        });
    }
    for (id, title, array) in [
        ("expect", "[[expect]]", true),
        ("requires", "[requires]", false),
        ("invariants", "[invariants]", false),
        ("watch", "[[watch]]", true),
    ] {
        let schema = if array {
            items(&root, id)
        } else {
            property(&root, &root, id).map(|p| resolve(&root, p))
        };
        if let Some(schema) = schema {
            tables.push(Table {
                id: id.into(),
                title: title.into(),
                description: description(schema),
                fields: fields_of(&root, schema, &[]),
            });
        }
    }
    tables
}

/// Every table of the inventory format, in the reference's order.
pub fn inventory_tables() -> Vec<Table> {
    let root = schema_of(Format::Inventory);
    let mut tables = vec![Table {
        id: "inventory".into(),
        title: "top level".into(),
        description: description(&root),
        fields: fields_of(&root, &root, &[]),
    }];
    if let Some(node) = items(&root, "node") {
        tables.push(Table {
            id: "node".into(),
            title: "[[node]]".into(),
            description: description(node),
            fields: fields_of(&root, node, &[]),
        });
        if let Some(power) = property(&root, node, "power") {
            let power = resolve(&root, power);
            for (driver, schema) in variants(&root, power, "driver") {
                tables.push(Table {
                    id: format!("power.{driver}"),
                    title: format!("power = {{ driver = \"{driver}\", ... }}"),
                    description: description(schema),
                    fields: fields_of(&root, schema, &["driver"]),
                });
            }
        }
    }
    tables
}

/// The event log's lines (`--json`): the fields every line has, then one
/// table per `kind`.
pub fn event_tables() -> Vec<Table> {
    let root = schema_value::<crate::log::LogEvent>();
    let mut tables = vec![Table {
        id: "event".into(),
        title: "every line".into(),
        description: description(&root),
        fields: fields_of(&root, &root, &[]),
    }];
    for (kind, schema) in variants(&root, &root, "kind") {
        tables.push(Table {
            id: format!("event.{kind}"),
            title: format!("kind = \"{kind}\""),
            description: description(schema),
            fields: fields_of(&root, schema, &["kind"]),
        });
    }
    tables
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// A table's fields as a Markdown table.
pub fn fields_markdown(fields: &[Field]) -> String {
    let mut out = String::from("| Field | Type | Required | Meaning, unit, default |\n");
    out.push_str("|---|---|---|---|\n");
    for f in fields {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            f.name,
            cell(&f.kind),
            if f.required { "yes" } else { "no" },
            cell(&f.description)
        ));
    }
    out
}

/// A table as a reference entry: a heading, its description, its fields.
pub fn table_markdown(t: &Table, level: usize) -> String {
    let mut out = format!("{} `{}`\n\n", "#".repeat(level), t.title);
    if !t.description.is_empty() {
        out.push_str(&t.description);
        out.push_str("\n\n");
    }
    if !t.fields.is_empty() {
        out.push_str(&fields_markdown(&t.fields));
    }
    if t.id.starts_with("fault.") {
        out.push_str(
            "\nBesides: `id`, `at`, `heal_after`, `allow_management_cut`, as every fault (`corodrill explain fault`).\n",
        );
    }
    out
}

/// The generated blocks of the reference, by marker name: what sits
/// between `<!-- generated: NAME -->` and `<!-- end generated -->` in
/// `docs/`.
pub fn generated_blocks() -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let experiment = experiment_tables();
    let inventory = inventory_tables();
    let find = |tables: &[Table], id: &str| tables.iter().find(|t| t.id == id).cloned();
    for (name, id) in [
        ("experiment", "experiment"),
        ("fault", "fault"),
        ("expect", "expect"),
        ("requires", "requires"),
        ("invariants", "invariants"),
        ("watch", "watch"),
    ] {
        if let Some(t) = find(&experiment, id) {
            blocks.push((name.to_owned(), fields_markdown(&t.fields)));
        }
    }
    let kinds: String = experiment
        .iter()
        .filter(|t| t.id.starts_with("fault."))
        .map(|t| table_markdown(t, 3))
        .collect::<Vec<_>>()
        .join("\n");
    blocks.push(("fault-kinds".into(), kinds));
    for (name, id) in [("inventory", "inventory"), ("node", "node")] {
        if let Some(t) = find(&inventory, id) {
            blocks.push((name.to_owned(), fields_markdown(&t.fields)));
        }
    }
    let drivers: String = inventory
        .iter()
        .filter(|t| t.id.starts_with("power."))
        .map(|t| table_markdown(t, 3))
        .collect::<Vec<_>>()
        .join("\n");
    blocks.push(("power-drivers".into(), drivers));
    let events = event_tables();
    if let Some(every) = events.first() {
        blocks.push(("event".into(), fields_markdown(&every.fields)));
    }
    let kinds: String = events
        .iter()
        .skip(1)
        .map(|t| table_markdown(t, 3))
        .collect::<Vec<_>>()
        .join("\n");
    blocks.push(("event-kinds".into(), kinds));
    blocks.push(("errors".into(), errors_table()));
    let entries: String = ErrorCode::ALL
        .iter()
        .map(|c| error_markdown(*c, 3))
        .collect::<Vec<_>>()
        .join("\n");
    blocks.push(("error-entries".into(), entries));
    blocks
}

/// What corodrill says about an error's example, as it prints it: the
/// messages of `corodrill check drill.toml` (or of the inventory
/// `inventory.toml`, or of the drill planned on `EXAMPLE_INVENTORY`).
/// None for a run's error, whose example is its message. The tests hold
/// every example to make its own error.
pub fn example_messages(code: ErrorCode) -> Option<Vec<String>> {
    let experiment =
        |text: &str| crate::experiment::parse(std::path::Path::new("drill.toml"), text);
    match code.entry().example {
        Example::Experiment(text) => Some(match experiment(text) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }),
        Example::Inventory(text) => Some(match crate::inventory::Inventory::from_toml(text) {
            Ok(_) => Vec::new(),
            Err(e) => {
                let at = e.span().map_or(0, |s| s.start);
                let (line, column) = crate::experiment::spans::line_column(text, at);
                vec![format!("inventory.toml:{line}:{column}: {e}")]
            }
        }),
        Example::Plan(text) => {
            let inventory = crate::inventory::Inventory::from_toml(EXAMPLE_INVENTORY).ok()?;
            Some(match experiment(text) {
                Err(errors) => errors.iter().map(ToString::to_string).collect(),
                Ok(e) => match crate::plan::plan(&e, &inventory) {
                    Ok(_) => Vec::new(),
                    Err(errors) => errors.iter().map(|m| format!("drill.toml: {m}")).collect(),
                },
            })
        }
        Example::Message(_) => None,
    }
}

/// The codes whose example made them, in the example's messages.
pub fn codes_in(messages: &[String]) -> Vec<ErrorCode> {
    ErrorCode::ALL
        .iter()
        .copied()
        .filter(|c| messages.iter().any(|m| m.ends_with(&c.hint())))
        .collect()
}

/// The table of every error: its name, where it is met, what it is.
pub fn errors_table() -> String {
    let mut out = String::from("| Error | Met | What |\n|---|---|---|\n");
    for code in ErrorCode::ALL {
        out.push_str(&format!(
            "| [`{}`](#{}) | {} | {} |\n",
            code.name(),
            code.name(),
            code.stage().title().to_lowercase(),
            cell(code.entry().summary)
        ));
    }
    out
}

/// An error's reference entry: what it means, how to fix it, an example
/// and what corodrill says about it.
pub fn error_markdown(code: ErrorCode, level: usize) -> String {
    let entry = code.entry();
    let mut out = format!(
        "{} `{}`\n\n{} ({}).\n\n{}\n\n**Fix:** {}\n\n",
        "#".repeat(level),
        code.name(),
        capitalized(entry.summary),
        code.stage().title().to_lowercase(),
        entry.meaning,
        entry.fix
    );
    let file = match entry.example {
        Example::Experiment(text) => Some(("An experiment `drill.toml` that makes it:", text)),
        Example::Inventory(text) => Some(("An inventory `inventory.toml` that makes it:", text)),
        Example::Plan(text) => Some((
            "An experiment `drill.toml` that makes it on an inventory of three nodes, \
             `pve1` to `pve3`, with links `ring0` and `ring1`:",
            text,
        )),
        Example::Message(message) => {
            out.push_str(&format!("**Example:**\n\n```text\n{message}\n```\n"));
            None
        }
    };
    if let Some((intro, text)) = file {
        out.push_str(&format!("**Example.** {intro}\n\n```toml\n{text}```\n\n"));
        let says = example_messages(code).unwrap_or_default();
        out.push_str(&format!(
            "corodrill says:\n\n```text\n{}\n```\n",
            says.join("\n")
        ));
    }
    out
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Replaces each generated block of a Markdown text with what
/// `generated_blocks` says it holds now; the names found, in order.
pub fn regenerate(text: &str) -> (String, Vec<String>) {
    let blocks = generated_blocks();
    let mut out = String::new();
    let mut found = Vec::new();
    let mut rest = text;
    const OPEN: &str = "<!-- generated: ";
    const CLOSE: &str = "<!-- end generated -->";
    while let Some(start) = rest.find(OPEN) {
        let after_open = start + OPEN.len();
        let Some(name_end) = rest[after_open..].find(" -->") else {
            break;
        };
        let name = rest[after_open..after_open + name_end].to_owned();
        let body_start = after_open + name_end + " -->".len();
        let Some(close) = rest[body_start..].find(CLOSE) else {
            break;
        };
        out.push_str(&rest[..body_start]);
        out.push_str("\n\n");
        match blocks.iter().find(|(n, _)| *n == name) {
            Some((_, body)) => out.push_str(body),
            None => out.push_str(&format!("(no generated block named {name:?})\n")),
        }
        out.push('\n');
        out.push_str(CLOSE);
        found.push(name);
        rest = &rest[body_start + close + CLOSE.len()..];
    }
    out.push_str(rest);
    (out, found)
}

/// What `corodrill explain TOPIC` prints: every entry named `topic`, a
/// fault kind ("partition"), a power driver ("ipmi"), a table
/// ("expect", "requires"), a field ("within", "heal_after") or an error
/// ("unknown-field"), each with where it is written. `table.field`
/// ("watch.nodes", "power.command") picks one. None: nothing has that
/// name.
pub fn explain(topic: &str) -> Option<String> {
    let topic = topic.trim();
    // An error as messages name it: "unknown-field", "error[unknown-field]".
    let error = topic.strip_prefix("error").unwrap_or(topic);
    if let Some(code) = ErrorCode::from_name(error.trim_start_matches('[').trim_end_matches(']')) {
        return Some(error_markdown(code, 2));
    }
    let topic = topic.trim_start_matches('[').trim_end_matches(']');
    let topic = topic.trim_start_matches('[').trim_end_matches(']');
    let mut entries = Vec::new();
    let tables: Vec<(&str, Table)> = experiment_tables()
        .into_iter()
        .map(|t| ("experiment", t))
        .chain(inventory_tables().into_iter().map(|t| ("inventory", t)))
        .collect();
    for (format, t) in &tables {
        let short = t.id.rsplit('.').next().unwrap_or(&t.id);
        if t.id == topic || short == topic {
            let what = if t.id.starts_with("fault.") {
                "a fault kind"
            } else if t.id.starts_with("power.") {
                "a power driver"
            } else {
                "a table"
            };
            entries.push(format!(
                "{}(in {format} files, {what})\n",
                table_markdown(t, 2)
            ));
        }
    }
    for (format, t) in &tables {
        for f in &t.fields {
            let qualified = format!("{}.{}", t.id, f.name);
            let parent = t.id.split('.').next().unwrap_or(&t.id);
            if f.name == topic || qualified == topic || format!("{parent}.{}", f.name) == topic {
                entries.push(format!(
                    "## `{}` in `{}`\n\n{}; {}.\n\n{}\n\n(in {format} files; `corodrill explain {qualified}` names it alone)\n",
                    f.name,
                    t.title,
                    f.kind,
                    if f.required { "required" } else { "optional" },
                    f.description
                ));
            }
        }
    }
    if entries.is_empty() {
        None
    } else {
        Some(entries.join("\n"))
    }
}

/// Every name `explain` knows (but the fields), for its error message.
pub fn topics() -> Vec<String> {
    let mut names: Vec<String> = experiment_tables()
        .into_iter()
        .chain(inventory_tables())
        .map(|t| t.id.rsplit('.').next().unwrap_or(&t.id).to_owned())
        .collect();
    names.dedup();
    names.extend(ErrorCode::ALL.iter().map(|c| c.name().to_owned()));
    names
}

#[cfg(test)]
mod tests;
