#![no_main]
//! Any aliases file: parsing never panics, errors name lines of the file, and
//! the table does not depend on the line ends (LF or CRLF) nor on comments
//! and blank lines added around it.
use libfuzzer_sys::fuzz_target;
use pillarbox_store::aliases::AliasTable;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (table, errors) = AliasTable::parse(text);
    let lines = text.lines().count();
    for e in &errors {
        assert!(
            e.line >= 1 && e.line <= lines,
            "error on line {} of {lines}",
            e.line
        );
    }
    assert!(table.len() <= lines);

    let crlf: String = text.lines().map(|l| format!("{l}\r\n")).collect();
    let (again, errors_crlf) = AliasTable::parse(&crlf);
    assert_eq!(again, table, "CRLF line ends change the table");
    assert_eq!(errors_crlf.len(), errors.len());

    let commented = format!("# aliases\n\n{text}\n# end\n");
    let (again, errors_commented) = AliasTable::parse(&commented);
    assert_eq!(again, table, "comments and blank lines change the table");
    assert_eq!(errors_commented.len(), errors.len());
});
