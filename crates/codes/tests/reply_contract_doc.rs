//! `docs/REPLY-CONTRACT.md` is the contract in `src/contract.rs`, as
//! [`pillarbox_codes::contract::markdown`] renders it. After changing a row,
//! rewrite the file with
//! `UPDATE_GOLDEN=1 cargo test -p pillarbox-codes --test reply_contract_doc`.

use std::path::Path;

use pillarbox_codes::contract::{markdown, Row};

fn doc_path() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/REPLY-CONTRACT.md")
}

#[test]
fn reply_contract_doc_is_the_contract_as_rendered() {
    let path = doc_path();
    let table = markdown();
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, &table).expect("write docs/REPLY-CONTRACT.md");
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    if on_disk != table {
        let first = on_disk
            .lines()
            .zip(table.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(on_disk.lines().count().min(table.lines().count()));
        panic!(
            "{} is not the contract in crates/codes/src/contract.rs (first difference at line {}: \
             file {:?}, contract {:?}); rewrite it with \
             `UPDATE_GOLDEN=1 cargo test -p pillarbox-codes --test reply_contract_doc`",
            path.display(),
            first + 1,
            on_disk.lines().nth(first),
            table.lines().nth(first),
        );
    }
}

#[test]
fn every_row_is_one_line_of_the_table_with_its_code_and_text() {
    let table = markdown();
    for row in Row::ALL {
        let spec = row.spec();
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("| {} |", row.name())))
            .unwrap_or_else(|| panic!("{row:?} missing from the table"));
        assert!(line.contains(&format!("| {} |", spec.code)), "{line}");
        assert!(line.contains(&format!("`{}`", spec.text)), "{line}");
    }
    let rows = table.lines().filter(|l| l.starts_with("| ")).count();
    // Heading row plus one per contract row.
    assert_eq!(rows, Row::ALL.len() + 1);
}
