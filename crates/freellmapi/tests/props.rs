//! Property test of the declarative config loader: any text is either a config or a clear error naming what is
//! wrong, never a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use freellmapi::declarative::RawConfigFile;
use fuzz_inputs::text;
use proptest::prelude::*;

/// TOML-looking text: the config's own tables and keys with arbitrary values, or anything.
fn config_text() -> impl Strategy<Value = String> {
    let key = prop::sample::select(
        &[
            "name",
            "platform",
            "key",
            "base_url",
            "models",
            "label",
            "enabled",
            "user",
            "limits",
            "rpm_limit",
            "tpd_limit",
            "allowed_models",
            "url",
            "strategy",
            "members",
            "rpm",
            "tpm",
            "no_catalog_limits",
        ][..],
    );
    let value = prop_oneof![
        text().prop_map(|t| format!("{t:?}")),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        text().prop_map(|t| format!("[{t:?}, \"${{{t}}}\"]")),
        Just("{ rpm = 5, tpd = 100 }".to_owned()),
        text(),
    ];
    let line = (key, value).prop_map(|(k, v)| format!("{k} = {v}\n"));
    let table = (
        prop::sample::select(
            &[
                "[[provider_keys]]",
                "[[gateway_keys]]",
                "[[profiles]]",
                "[proxy]",
                "[x]",
            ][..],
        ),
        prop::collection::vec(line, 0..6),
    )
        .prop_map(|(t, lines)| format!("{t}\n{}", lines.concat()));
    prop_oneof![
        4 => prop::collection::vec(table, 0..4).prop_map(|t| t.concat()),
        1 => text(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_is_a_config_or_a_named_error(text in config_text()) {
        match RawConfigFile::parse(&text) {
            Ok(raw) => {
                let env = |name: &str| (name == "SET").then(|| "value".to_owned());
                if let Err(e) = raw.validate(&env) {
                    prop_assert!(!e.to_string().is_empty());
                }
            }
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}
