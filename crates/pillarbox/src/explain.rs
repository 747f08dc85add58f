//! `pillarbox explain`: what a reply code means, when it is met, who must act
//! and how to fix it, from the registry in `pillarbox-codes`.
//!
//! ```text
//! pillarbox explain 452
//! pillarbox explain 4.2.2
//! pillarbox explain "452-4.2.2 The email account that you tried to reach is over quota"
//! pillarbox explain 235 452             # side by side
//! pillarbox explain --lang ja --json 535
//! ```
//!
//! The JSON schema is documented in `docs/explain-json.md`.

use std::io::Write;
use std::process::ExitCode;

use pillarbox_codes::registry::{fill, Explanation, Labels};
use pillarbox_codes::{check, compare, parse_reply_text, EnhancedCode, Finding, Lang, ParsedReply};

/// The version of the JSON output (`schema` field).
pub const JSON_SCHEMA: &str = "pillarbox-explain/1";

/// Arguments of `pillarbox explain`.
#[derive(clap::Args, Debug, Clone)]
pub struct ExplainArgs {
    /// A reply code (452), an enhanced status code (4.2.2), a whole reply as
    /// copied from a log or bounce (quote it), or two codes to compare (235 452).
    #[arg(required = true, num_args = 1.., value_name = "CODE|REPLY")]
    pub input: Vec<String>,

    /// Language of the whole output: en, zh, id, pt, ja, tr.
    #[arg(long, default_value = "en", value_parser = parse_lang)]
    pub lang: Lang,

    /// Print JSON (schema: docs/explain-json.md) instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_lang(s: &str) -> Result<Lang, String> {
    Lang::from_tag(s)
        .ok_or_else(|| format!("unknown language {s:?}; use one of en, zh, id, pt, ja, tr"))
}

/// Runs `pillarbox explain`: exit 0 on success, 2 when the input holds no
/// known code.
pub fn run(args: &ExplainArgs) -> ExitCode {
    let (out, err, code) = execute(args);
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    let _ = stdout.flush();
    if !err.is_empty() {
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(err.as_bytes());
    }
    ExitCode::from(code)
}

/// One side of an explanation: what the user gave and what it means.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Side {
    /// The input as given.
    pub input: String,
    /// The reply found in the input, when the input was more than a bare code.
    pub reply: Option<ParsedReply>,
    /// The explanation of the basic code.
    pub basic: Option<Explanation>,
    /// The explanation of the enhanced code.
    pub enhanced: Option<Explanation>,
    /// Inconsistencies of the reply (empty for a bare code).
    pub findings: Vec<FindingOut>,
}

impl Side {
    /// The explanation a comparison uses: the basic code's, else the enhanced one's.
    fn primary(&self) -> Option<&Explanation> {
        self.basic.as_ref().or(self.enhanced.as_ref())
    }
}

/// A finding with its message in the output language.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FindingOut {
    /// The finding.
    #[serde(flatten)]
    pub finding: Finding,
    /// What it means, in the output language.
    pub message: String,
}

/// Why an input could not be explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputError {
    /// A code the registry does not know (`431`, `5.7.606`).
    UnknownCode(String),
    /// No code at all in the text.
    NoCode(String),
}

impl InputError {
    fn message(&self, lang: Lang) -> String {
        let l = lang.labels();
        match self {
            InputError::UnknownCode(i) => fill(l.unknown_code, &[("input", i)]),
            InputError::NoCode(i) => fill(l.no_code_found, &[("input", i)]),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            InputError::UnknownCode(_) => "unknown_code",
            InputError::NoCode(_) => "no_code_found",
        }
    }

    fn input(&self) -> &str {
        match self {
            InputError::UnknownCode(i) | InputError::NoCode(i) => i,
        }
    }
}

fn is_basic_code(s: &str) -> bool {
    s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Explains one input: a bare basic code, a bare enhanced code, or a reply text.
pub fn resolve(input: &str, lang: Lang) -> Result<Side, InputError> {
    let trimmed = input.trim();
    if is_basic_code(trimmed) {
        let code: u16 = trimmed
            .parse()
            .map_err(|_| InputError::NoCode(input.to_string()))?;
        let basic = Explanation::basic(code, lang)
            .ok_or_else(|| InputError::UnknownCode(trimmed.to_string()))?;
        return Ok(Side {
            input: input.to_string(),
            reply: None,
            basic: Some(basic),
            enhanced: None,
            findings: Vec::new(),
        });
    }
    if let Some(e) = EnhancedCode::parse(trimmed) {
        let enhanced = Explanation::enhanced(e, lang)
            .ok_or_else(|| InputError::UnknownCode(trimmed.to_string()))?;
        return Ok(Side {
            input: input.to_string(),
            reply: None,
            basic: None,
            enhanced: Some(enhanced),
            findings: Vec::new(),
        });
    }
    let reply = parse_reply_text(input).ok_or_else(|| InputError::NoCode(input.to_string()))?;
    let basic = reply.code.and_then(|c| Explanation::basic(c, lang));
    let enhanced = reply.enhanced.and_then(|e| Explanation::enhanced(e, lang));
    let findings: Vec<FindingOut> = match reply.code {
        Some(code) => check(code, reply.enhanced, &reply.text)
            .into_iter()
            .map(|f| FindingOut {
                message: f.message(lang),
                finding: f,
            })
            .collect(),
        None => Vec::new(),
    };
    if basic.is_none() && enhanced.is_none() {
        let shown = match (reply.code, reply.enhanced) {
            (Some(c), Some(e)) => format!("{c} {e}"),
            (Some(c), None) => c.to_string(),
            (None, Some(e)) => e.to_string(),
            (None, None) => input.to_string(),
        };
        return Err(InputError::UnknownCode(shown));
    }
    Ok(Side {
        input: input.to_string(),
        reply: Some(reply),
        basic,
        enhanced,
        findings,
    })
}

/// What the arguments ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Explain one code or reply.
    One(String),
    /// Compare two.
    Two(String, String),
}

/// Reads the arguments: two codes of the same kind (`235 452`, `4.2.2 5.2.2`)
/// or two quoted replies are compared; a basic and an enhanced code
/// (`452 4.2.2`) or several words are one reply.
pub fn query(input: &[String]) -> Query {
    match input {
        [one] => Query::One(one.clone()),
        [a, b] => {
            let (ta, tb) = (a.trim(), b.trim());
            let kind = |s: &str| {
                if is_basic_code(s) {
                    Some(0)
                } else if EnhancedCode::parse(s).is_some() {
                    Some(1)
                } else if s.contains(' ') && parse_reply_text(s).is_some() {
                    Some(2)
                } else {
                    None
                }
            };
            match (kind(ta), kind(tb)) {
                (Some(0), Some(1)) | (Some(1), Some(0)) => Query::One(format!("{ta} {tb}")),
                (Some(_), Some(_)) => Query::Two(a.clone(), b.clone()),
                _ => Query::One(input.join(" ")),
            }
        }
        _ => Query::One(input.join(" ")),
    }
}

/// Runs the command without touching stdout: (stdout, stderr, exit code).
pub fn execute(args: &ExplainArgs) -> (String, String, u8) {
    let lang = args.lang;
    let result = match query(&args.input) {
        Query::One(i) => resolve(&i, lang).map(|s| (s, None)),
        Query::Two(a, b) => {
            resolve(&a, lang).and_then(|sa| resolve(&b, lang).map(|sb| (sa, Some(sb))))
        }
    };
    match result {
        Ok((side, None)) => {
            let out = if args.json {
                json_one(&side, lang)
            } else {
                render_one(&side, lang)
            };
            (out, String::new(), 0)
        }
        Ok((a, Some(b))) => {
            let out = if args.json {
                json_two(&a, &b, lang)
            } else {
                render_two(&a, &b, lang)
            };
            (out, String::new(), 0)
        }
        Err(e) => {
            let msg = format!("pillarbox explain: {}\n", e.message(lang));
            let out = if args.json {
                let v = serde_json::json!({
                    "schema": JSON_SCHEMA,
                    "mode": "error",
                    "lang": lang,
                    "error": { "kind": e.kind(), "input": e.input(), "message": e.message(lang) },
                });
                format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
            } else {
                String::new()
            };
            (out, msg, 2)
        }
    }
}

fn json_one(side: &Side, lang: Lang) -> String {
    #[derive(serde::Serialize)]
    struct One<'a> {
        schema: &'static str,
        mode: &'static str,
        lang: Lang,
        #[serde(flatten)]
        side: &'a Side,
    }
    let v = One {
        schema: JSON_SCHEMA,
        mode: "explain",
        lang,
        side,
    };
    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
}

fn differences(a: &Side, b: &Side) -> Vec<String> {
    match (a.primary(), b.primary()) {
        (Some(x), Some(y)) => compare(x.clone(), y.clone()).differences,
        _ => Vec::new(),
    }
}

fn json_two(a: &Side, b: &Side, lang: Lang) -> String {
    let v = serde_json::json!({
        "schema": JSON_SCHEMA,
        "mode": "compare",
        "lang": lang,
        "sides": [a, b],
        "differences": differences(a, b),
    });
    format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
}

fn sep(lang: Lang) -> &'static str {
    lang.list_separator()
}

fn colon(lang: Lang) -> &'static str {
    match lang {
        Lang::Zh | Lang::Ja => "：",
        _ => ": ",
    }
}

fn field(out: &mut String, lang: Lang, label: &str, value: &str) {
    if !value.is_empty() {
        out.push_str(&format!("  {label}{}{value}\n", colon(lang)));
    }
}

fn class_line(e: &Explanation) -> String {
    match &e.class {
        Some(c) => format!("{}xx {} — {}", c.digit, c.name, c.meaning),
        None => e
            .classes
            .iter()
            .map(|c| format!("{}xx {}", c.digit, c.name))
            .collect::<Vec<_>>()
            .join(" / "),
    }
}

fn render_explanation(out: &mut String, e: &Explanation, lang: Lang) {
    let l = lang.labels();
    out.push_str(&format!("{}  {}\n", e.code, e.title));
    field(out, lang, l.class, &class_line(e));
    if let Some(s) = &e.subject {
        field(out, lang, l.subject, &format!("X.{}.x {}", s.digit, s.name));
        if e.classes.len() > 1 || e.class.is_none() {
            let cl = e
                .classes
                .iter()
                .map(|c| format!("{}xx", c.digit))
                .collect::<Vec<_>>()
                .join(sep(lang));
            field(out, lang, l.classes, &cl);
        }
    }
    field(out, lang, l.meaning, e.description);
    field(out, lang, l.when, e.when);
    field(
        out,
        lang,
        l.after,
        &e.after
            .iter()
            .map(|s| s.name)
            .collect::<Vec<_>>()
            .join(sep(lang)),
    );
    field(
        out,
        lang,
        l.actors,
        &e.actors
            .iter()
            .map(|a| a.name)
            .collect::<Vec<_>>()
            .join(sep(lang)),
    );
    field(
        out,
        lang,
        l.retry,
        &format!("{} — {}", e.retry.name, e.retry.how),
    );
    field(out, lang, l.fix_sender, e.fix.sender);
    field(out, lang, l.fix_operator, e.fix.operator);
    field(out, lang, l.right_reply, e.right_reply);
    field(out, lang, l.usually_with, &e.usually_with.join(sep(lang)));
    field(out, lang, l.references, &e.references.join(sep(lang)));
}

fn render_reply(out: &mut String, side: &Side, l: &Labels, lang: Lang) {
    if let Some(r) = &side.reply {
        let head = match (r.code, r.enhanced) {
            (Some(c), Some(e)) => format!("{c} {e}"),
            (Some(c), None) => c.to_string(),
            (None, Some(e)) => e.to_string(),
            (None, None) => String::new(),
        };
        out.push_str(&format!("{}{}{head}\n", l.reply, colon(lang)));
        if let Some(p) = &r.prefix {
            field(out, lang, l.reported_as, p);
        }
        field(out, lang, l.provider_text, &r.text);
        if let Some(c) = &r.in_reply_to {
            field(out, lang, l.in_reply_to, c);
        }
        out.push('\n');
    }
}

fn render_findings(out: &mut String, side: &Side, l: &Labels, lang: Lang) {
    if side.reply.is_none() {
        return;
    }
    out.push_str(&format!("{}{}", l.findings, colon(lang).trim_end()));
    if side.findings.is_empty() {
        out.push_str(&format!(" {}\n", l.no_findings));
        return;
    }
    out.push('\n');
    for f in &side.findings {
        out.push_str(&format!(
            "  - [{}] {}\n",
            f.finding.severity.name(lang),
            f.message
        ));
    }
}

/// The text output for one code or reply.
pub fn render_one(side: &Side, lang: Lang) -> String {
    let l = lang.labels();
    let mut out = String::new();
    render_reply(&mut out, side, l, lang);
    let both = side.basic.is_some() && side.enhanced.is_some();
    if let Some(b) = &side.basic {
        if both {
            out.push_str(&format!("== {} ==\n", l.basic_code));
        }
        render_explanation(&mut out, b, lang);
        out.push('\n');
    }
    if let Some(e) = &side.enhanced {
        if both {
            out.push_str(&format!("== {} ==\n", l.enhanced_code));
        }
        render_explanation(&mut out, e, lang);
        out.push('\n');
    }
    render_findings(&mut out, side, l, lang);
    out
}

fn side_name(side: &Side) -> String {
    match (&side.reply, side.primary()) {
        (Some(r), _) => match (r.code, r.enhanced) {
            (Some(c), Some(e)) => format!("{c} {e}"),
            (Some(c), None) => c.to_string(),
            (None, Some(e)) => e.to_string(),
            (None, None) => side.input.clone(),
        },
        (None, Some(e)) => e.code.clone(),
        (None, None) => side.input.clone(),
    }
}

/// The text output comparing two codes or replies side by side.
pub fn render_two(a: &Side, b: &Side, lang: Lang) -> String {
    let l = lang.labels();
    let (na, nb) = (side_name(a), side_name(b));
    let mut out = format!(
        "== {} ==\n\n",
        fill(l.comparison, &[("a", &na), ("b", &nb)])
    );
    let (Some(ea), Some(eb)) = (a.primary(), b.primary()) else {
        return out;
    };
    let w = na.chars().count().max(nb.chars().count());
    let pair = |out: &mut String, heading: &str, va: String, vb: String| {
        out.push_str(&format!("{heading}\n"));
        out.push_str(&format!("  {na:<w$}  {va}\n"));
        out.push_str(&format!("  {nb:<w$}  {vb}\n\n"));
    };
    if a.reply.as_ref().is_some_and(|r| !r.text.is_empty())
        || b.reply.as_ref().is_some_and(|r| !r.text.is_empty())
    {
        let text = |s: &Side| s.reply.as_ref().map(|r| r.text.clone()).unwrap_or_default();
        pair(&mut out, l.provider_text, text(a), text(b));
    }
    pair(&mut out, l.class, class_line(ea), class_line(eb));
    pair(
        &mut out,
        l.meaning,
        format!("{}{}{}", ea.title, colon(lang), ea.description),
        format!("{}{}{}", eb.title, colon(lang), eb.description),
    );
    let when = |e: &Explanation| {
        let after = e
            .after
            .iter()
            .map(|s| s.name)
            .collect::<Vec<_>>()
            .join(sep(lang));
        format!("{} [{}{}{}]", e.when, l.after, colon(lang), after)
    };
    pair(&mut out, l.when, when(ea), when(eb));
    pair(
        &mut out,
        l.retry,
        format!("{} — {}", ea.retry.name, ea.retry.how),
        format!("{} — {}", eb.retry.name, eb.retry.how),
    );
    out.push_str(&format!("{}\n", l.fix));
    for (n, e) in [(&na, ea), (&nb, eb)] {
        out.push_str(&format!(
            "  {n:<w$}  {}{}{}\n",
            l.fix_sender,
            colon(lang),
            e.fix.sender
        ));
        out.push_str(&format!(
            "  {:<w$}  {}{}{}\n",
            "",
            l.fix_operator,
            colon(lang),
            e.fix.operator
        ));
    }
    out.push('\n');
    out.push_str(&format!("{}\n", l.differences));
    for (i, d) in differences(a, b).iter().enumerate() {
        out.push_str(&format!("  {}. {d}\n", i + 1));
    }
    out.push('\n');
    pair(
        &mut out,
        l.right_reply,
        ea.right_reply.to_string(),
        eb.right_reply.to_string(),
    );
    for s in [a, b] {
        if !s.findings.is_empty() {
            out.push_str(&format!("{} ({})\n", l.findings, side_name(s)));
            for f in &s.findings {
                out.push_str(&format!(
                    "  - [{}] {}\n",
                    f.finding.severity.name(lang),
                    f.message
                ));
            }
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(input: &[&str], lang: &str, json: bool) -> ExplainArgs {
        ExplainArgs {
            input: input.iter().map(|s| s.to_string()).collect(),
            lang: Lang::from_tag(lang).unwrap(),
            json,
        }
    }

    #[test]
    fn a_basic_and_an_enhanced_code_are_one_reply_and_two_codes_a_comparison() {
        assert_eq!(
            query(&["452".into(), "4.2.2".into()]),
            Query::One("452 4.2.2".into())
        );
        assert_eq!(
            query(&["235".into(), "452".into()]),
            Query::Two("235".into(), "452".into())
        );
        assert_eq!(
            query(&["4.2.2".into(), "5.2.2".into()]),
            Query::Two("4.2.2".into(), "5.2.2".into())
        );
        assert_eq!(
            query(&["452".into(), "mailbox".into(), "full".into()]),
            Query::One("452 mailbox full".into())
        );
    }

    #[test]
    fn provider_text_is_shown_beside_the_explanation() {
        let (out, err, code) = execute(&args(
            &["452-4.2.2 The email account that you tried to reach is over quota"],
            "en",
            false,
        ));
        assert_eq!(code, 0, "{err}");
        assert!(out
            .contains("Provider's text: The email account that you tried to reach is over quota"));
        assert!(out.contains("452  Insufficient storage"));
        assert!(out.contains("4.2.2  Mailbox full"));
        assert!(out.contains("No inconsistencies found."));
    }

    #[test]
    fn unknown_code_exits_2_with_a_message() {
        let (out, err, code) = execute(&args(&["431"], "en", false));
        assert_eq!(code, 2);
        assert!(out.is_empty());
        assert!(err.contains("unknown code: 431"), "{err}");
        let (_, err, code) = execute(&args(&["hello there"], "en", false));
        assert_eq!(code, 2);
        assert!(err.contains("no reply code found"), "{err}");
    }

    #[test]
    fn comparison_numbers_its_differences() {
        let (out, _, code) = execute(&args(&["235", "452"], "en", false));
        assert_eq!(code, 0);
        assert!(out.contains("235 compared with 452"));
        assert!(
            out.contains("  1. 235 is 2xx positive completion; 452 is 4xx transient negative."),
            "{out}"
        );
        assert!(out.contains("The right reply when"));
    }

    #[test]
    fn json_parses_back() {
        let (out, _, code) = execute(&args(&["454 4.7.0 Invalid credentials"], "en", true));
        assert_eq!(code, 0);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["schema"], JSON_SCHEMA);
        assert_eq!(v["mode"], "explain");
        assert_eq!(v["reply"]["code"], 454);
        assert_eq!(v["basic"]["code"], "454");
        assert_eq!(v["enhanced"]["code"], "4.7.0");
        assert_eq!(v["findings"][0]["kind"], "auth_failure_as_transient");
        assert_eq!(v["findings"][0]["suggest"], "5.7.8");
    }
}
