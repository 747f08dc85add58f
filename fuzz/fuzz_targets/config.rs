#![no_main]
//! Any config text: parsing never panics, and a config that parses prints
//! (as `check-config` does) to TOML that parses to the same config.
use libfuzzer_sys::fuzz_target;
use pillarbox_server::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = Config::parse(text, "fuzz.toml") else {
        return;
    };
    let printed = cfg.to_toml();
    let again = Config::parse(&printed, "printed.toml")
        .unwrap_or_else(|e| panic!("printed config does not parse: {e}\n{printed}"));
    assert_eq!(
        again.to_toml(),
        printed,
        "printed config is not a fixed point"
    );
});
