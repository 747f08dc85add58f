#![no_main]
//! Any users file: parsing never panics, every user it keeps is found by a
//! lookup, and the users written back in the file format parse to the same
//! users with no error.
use libfuzzer_sys::fuzz_target;
use pillarbox_store::UserDirectory;

const DOMAIN: &str = "example.test";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (dir, errors) = UserDirectory::parse(text, DOMAIN);
    let lines = text.lines().count();
    for e in &errors {
        assert!(
            e.line >= 1 && e.line <= lines,
            "error on line {} of {lines}",
            e.line
        );
    }
    let mut written = String::new();
    for entry in &dir {
        assert_eq!(
            dir.lookup(&entry.user, &entry.domain),
            Some(entry),
            "lookup of a parsed user"
        );
        assert!(!entry.password.contains(':'));
        written.push_str(&format!(
            "{}@{}:{}::::::",
            entry.user, entry.domain, entry.password
        ));
        let extra: Vec<String> = entry
            .extra
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        written.push_str(&extra.join(" "));
        written.push('\n');
    }
    let (again, errors) = UserDirectory::parse(&written, DOMAIN);
    assert!(
        errors.is_empty(),
        "written users file has errors: {errors:?}\n{written}"
    );
    assert_eq!(
        again.iter().collect::<Vec<_>>(),
        dir.iter().collect::<Vec<_>>(),
        "written users file parses to other users:\n{written}"
    );
});
