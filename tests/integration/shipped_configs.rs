//! Every config we ship passes `selfheal check`: the demo stack and the
//! Kubernetes external-Redis variant (embedded in its ConfigMap).

use std::path::Path;
use std::process::Command;

use crate::harness::{temp_dir, BIN};

fn check(path: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("check")
        .arg("--config")
        .arg(path)
        .envs(env.iter().copied())
        .output()
        .expect("run check");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn shipped_supervisor_toml_is_valid_and_ordered() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("supervisor.toml");
    let (code, out) = check(&path, &[]);
    assert_eq!(code, 0, "{out}");
    let order: Vec<&str> = out
        .lines()
        .filter_map(|l| l.trim().split_once(". "))
        .map(|(_, rest)| rest.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(order, ["redis", "app", "proxy"], "{out}");
}

#[test]
fn kubernetes_external_redis_config_is_valid() {
    let yaml = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/kubernetes/external-redis/configmap.yaml"),
    )
    .expect("configmap");
    let toml: String = yaml
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("supervisor.toml: |"))
        .skip(1)
        .map(|l| l.strip_prefix("    ").unwrap_or(l.trim_start()))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        toml.contains("[programs.app]"),
        "config block not found in the ConfigMap"
    );
    let dir = temp_dir();
    let path = dir.path().join("supervisor.toml");
    std::fs::write(&path, toml).expect("write");
    let (code, out) = check(
        &path,
        &[("SELFHEAL_REDIS_URL", "redis://redis.example:6379")],
    );
    assert_eq!(code, 0, "{out}");
    // Without the URL the variant must refuse to start, naming the variable.
    let (code, out) = check(&path, &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("SELFHEAL_REDIS_URL"), "{out}");
}
