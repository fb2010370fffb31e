//! The config the NixOS module generates for the docs/nixos.md example passes `config check`.

mod common;
use common::*;

#[test]
fn module_example_config_passes_config_check() {
    let d = NodeDir::new();
    let bundle = d.build_bundle();
    let genesis = d.path().join("etc/genesis.json");
    let entity = d.path().join("etc/entity.json");
    std::fs::write(
        &entity,
        r#"{"v":2,"id":"H6u9MtuoWRKn5DKSgarj/dzr2Z9BsjuRHgRAoXITOcU=","nodes":[]}"#,
    )
    .expect("entity");
    let fixture = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/nix/tests/example-config.yml"
    ))
    .expect("fixture");
    let store = "/nix/store/00000000000000000000000000000000-";
    let cfg = fixture
        .replace(
            &format!("{store}genesis.json"),
            genesis.to_str().expect("utf8"),
        )
        .replace(
            &format!("{store}entity.json"),
            entity.to_str().expect("utf8"),
        )
        .replace(
            &format!("{store}paratime-kvstore-0.1.0.orc"),
            bundle.to_str().expect("utf8"),
        );
    assert!(!cfg.contains("/nix/store"), "every store path is replaced");
    let p = d.path().join("etc/config.yml");
    std::fs::write(&p, cfg).expect("write");
    let o = run(&["config", "check", "--config", p.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}
