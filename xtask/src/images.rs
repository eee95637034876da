//! `cargo xtask images`: the five container images of `deploy/Dockerfile`, tagged as the chart
//! expects (`<registry>/magnetm3u8-<service>:<tag>`, the chart's `image.registry` and
//! `image.tag`).
//!
//! Without `--build` it prints the docker commands. With `--build` it builds them with buildah
//! (installed with apt-get when missing; no daemon, `vfs` storage and chroot isolation, so it
//! runs as root in a plain VM or container) in storage under the target dir:
//! - the binaries come from this workspace's release build (`--build-arg BINARIES=prebuilt`,
//!   staged in the build context's `bin/`), or with `--from-source` from the Dockerfile's own
//!   `rust:1-bookworm` stage (that needs the image from a registry);
//! - `debian:bookworm-slim` is made from Debian's own packages with debootstrap
//!   (`--variant=minbase`) once and kept, so no registry is needed;
//! - `--push` pushes each image to its registry.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use magnet_stack::SERVICES;

use crate::system::{self, cargo};

/// The base image the Dockerfile starts from.
const BASE: &str = "docker.io/library/debian:bookworm-slim";
/// The label of a base made by this code (a change to how it is made changes the label).
const BASE_LABEL: &str = "org.magnetm3u8.base=debootstrap-minbase-slim-2";

#[derive(clap::Args)]
pub struct Options {
    /// Registry to tag for (and push to).
    #[arg(long, default_value = "ghcr.io/magnetm3u8")]
    registry: String,
    /// Image tag (default: the workspace version).
    #[arg(long)]
    tag: Option<String>,
    /// Build the images (with buildah) instead of printing the docker commands.
    #[arg(long)]
    build: bool,
    /// Compile in the Dockerfile's own Rust stage instead of using this workspace's release build.
    #[arg(long, requires = "build")]
    from_source: bool,
    /// Push the built images to `--registry`.
    #[arg(long, requires = "build")]
    push: bool,
}

/// The image name of `service`.
pub fn image(registry: &str, service: &str, tag: &str) -> String {
    format!("{registry}/magnetm3u8-{service}:{tag}")
}

pub fn run(opts: &Options) -> anyhow::Result<()> {
    let tag = opts.tag.as_deref().unwrap_or(env!("CARGO_PKG_VERSION"));
    if !opts.build {
        for service in SERVICES {
            let image = image(&opts.registry, service, tag);
            println!("docker build -f deploy/Dockerfile --target {service} -t {image} .");
            println!("docker push {image}");
        }
        return Ok(());
    }
    let buildah = Buildah::new()?;
    let binaries = if opts.from_source {
        Binaries::Source
    } else {
        // The gateway embeds the web UI.
        crate::web::build(false)?;
        system::run(cargo().args(["build", "--release", "--workspace", "--bins"]))?;
        Binaries::Prebuilt("release")
    };
    for image in buildah.build(&binaries, &opts.registry, tag)? {
        if opts.push {
            system::run(
                buildah
                    .command()
                    .arg("push")
                    .arg(&image)
                    .arg(format!("docker://{image}")),
            )?;
        }
    }
    buildah.summary(&opts.registry, tag)
}

/// The images the tests run (`tests/tests/integration/images.rs`): built from the debug
/// binaries the tests use (the runtime stages are the same as for release ones), tagged
/// `localhost/magnetm3u8-<service>:test`. The environment that tells the tests where they are;
/// none, with the reason printed, when buildah cannot be had here.
pub fn for_tests() -> anyhow::Result<Vec<(&'static str, PathBuf)>> {
    let buildah = match Buildah::new() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("xtask: the image tests are skipped: buildah is not available ({e:#})");
            return Ok(Vec::new());
        }
    };
    buildah.build(&Binaries::Prebuilt("debug"), TEST_REGISTRY, TEST_TAG)?;
    Ok(vec![
        ("MAGNET_BUILDAH", buildah.script.clone()),
        (
            "MAGNET_IMAGES_PODS",
            crate::up::target_dir()?.join("chart-rendered/pods"),
        ),
    ])
}

/// Where the tests' images are tagged.
const TEST_REGISTRY: &str = "localhost";
const TEST_TAG: &str = "test";

/// Where the images' binaries come from.
enum Binaries {
    /// The Dockerfile's own Rust stage.
    Source,
    /// This workspace's build of that profile (`release`, `debug`), built already.
    Prebuilt(&'static str),
}

/// buildah on the project's own storage (`<target>/containers`, vfs).
pub struct Buildah {
    storage: PathBuf,
    /// `<storage>/buildah`: buildah with the storage flags, for the image tests.
    script: PathBuf,
}

impl Buildah {
    /// Installs buildah and debootstrap when missing.
    pub fn new() -> anyhow::Result<Self> {
        system::ensure_buildah()?;
        let storage = crate::up::target_dir()?.join("containers");
        std::fs::create_dir_all(&storage)?;
        let this = Self {
            script: storage.join("buildah"),
            storage,
        };
        let flags: Vec<String> = this
            .command()
            .get_args()
            .map(|a| format!("'{}'", a.to_string_lossy()))
            .collect();
        std::fs::write(
            &this.script,
            format!("#!/bin/sh\nexec buildah {} \"$@\"\n", flags.join(" ")),
        )?;
        std::fs::set_permissions(
            &this.script,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )?;
        Ok(this)
    }

    /// `buildah` with the storage flags.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("buildah");
        cmd.arg("--root")
            .arg(self.storage.join("storage"))
            .arg("--runroot")
            .arg(self.storage.join("run"))
            .args(["--storage-driver", "vfs"]);
        cmd
    }

    /// Builds the five images; their names.
    fn build(&self, binaries: &Binaries, registry: &str, tag: &str) -> anyhow::Result<Vec<String>> {
        let context = match binaries {
            Binaries::Source => system::repository_root()?,
            Binaries::Prebuilt(profile) => stage_binaries(profile)?,
        };
        let dockerfile = system::repository_root()?.join("deploy/Dockerfile");
        self.ensure_base()?;
        let mut built = Vec::new();
        for service in SERVICES {
            let image = image(registry, service, tag);
            eprintln!("xtask: building {image}");
            let mut bud = self.command();
            bud.args(["bud", "--quiet", "--isolation", "chroot", "--layers"])
                .arg("--file")
                .arg(&dockerfile)
                .args(["--target", service, "--tag", &image]);
            if let Binaries::Prebuilt(_) = binaries {
                // The base image is local; nothing else is fetched.
                bud.args(["--pull=never", "--build-arg", "BINARIES=prebuilt"]);
            }
            system::run(bud.arg(&context))?;
            built.push(image);
        }
        // What the builds leave (a working container per `FROM` of the binaries' stage) and the
        // images these replaced: vfs keeps whole copies, so storage would grow every build.
        for clean in [["rm", "--all"], ["rmi", "--prune"]] {
            system::run(
                self.command()
                    .args(clean)
                    .stdout(std::process::Stdio::null()),
            )?;
        }
        Ok(built)
    }

    /// Whether the base image is there, made the way this code makes it (its label).
    fn base_is_current(&self) -> bool {
        self.command()
            .args([
                "inspect",
                "--type",
                "image",
                "--format",
                "{{.OCIv1.Config.Labels}}",
                BASE,
            ])
            .output()
            .is_ok_and(|o| {
                let (key, value) = BASE_LABEL.split_once('=').unwrap_or((BASE_LABEL, ""));
                o.status.success()
                    && String::from_utf8_lossy(&o.stdout).contains(&format!("{key}:{value}"))
            })
    }

    /// `debian:bookworm-slim` in the storage, made once from Debian's own packages with
    /// debootstrap (no registry needed; what the published image holds, give or take docs).
    fn ensure_base(&self) -> anyhow::Result<()> {
        if self.base_is_current() {
            return Ok(());
        }
        eprintln!("xtask: making {BASE} from Debian's packages (debootstrap, once)");
        let rootfs = self.storage.join("bookworm-rootfs");
        if !rootfs.join("usr/bin/apt-get").exists() {
            let _ = std::fs::remove_dir_all(&rootfs);
            system::run(
                Command::new("debootstrap")
                    .args(["--variant=minbase", "bookworm"])
                    .arg(&rootfs)
                    .arg("http://deb.debian.org/debian"),
            )?;
        }
        slim(&rootfs)?;
        let out = self.command().args(["from", "scratch"]).output()?;
        anyhow::ensure!(out.status.success(), "buildah from scratch failed");
        let ctr = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        system::run(self.command().args(["copy", &ctr]).arg(&rootfs).arg("/"))?;
        system::run(self.command().args([
            "config",
            "--env",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--cmd",
            "bash",
            "--label",
            BASE_LABEL,
            &ctr,
        ]))?;
        system::run(self.command().args(["commit", "--quiet", &ctr, BASE]))?;
        system::run(self.command().args(["rm", &ctr]))?;
        Ok(())
    }

    /// Prints the images' sizes and how to load them into a local cluster.
    fn summary(&self, registry: &str, tag: &str) -> anyhow::Result<()> {
        for service in SERVICES {
            let image = image(registry, service, tag);
            let out = self
                .command()
                .args(["images", "--noheading", "--format", "{{.Size}}"])
                .arg(&image)
                .output()?;
            let size = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            println!("{image}  {size}");
        }
        let archive = self.storage.join("magnetm3u8-images.tar");
        println!(
            "\nFor a local cluster, write an archive per image and load it, e.g.:\n  \
             buildah --root {root} --runroot {run} --storage-driver vfs push {img} docker-archive:{archive}:{img}\n  \
             kind load image-archive {archive}     # kind\n  \
             k3d image import {archive}            # k3d\n\
             then `helm install … --set image.registry={registry} --set image.tag={tag}`.",
            root = self.storage.join("storage").display(),
            run = self.storage.join("run").display(),
            img = image(registry, "gateway", tag),
            archive = archive.display(),
        );
        Ok(())
    }
}

/// Stages the binaries of a build `profile` (built already) as the build context's `bin/`;
/// the context.
fn stage_binaries(profile: &str) -> anyhow::Result<PathBuf> {
    let target = crate::up::target_dir()?;
    let context = target.join("images-context");
    let bin = context.join("bin");
    std::fs::create_dir_all(&bin)?;
    for service in SERVICES {
        let name = format!("magnet-{service}");
        std::fs::copy(target.join(profile).join(&name), bin.join(&name))
            .with_context(|| format!("staging the {profile} build of {name}"))?;
    }
    Ok(context)
}

/// What Debian's published slim images leave out, left out of the base made here too: apt's
/// caches (now and after each `apt-get`), and documentation, manual pages and translations, now and in what the images'
/// `apt-get install` adds (dpkg's `path-exclude`, as the slim images set it; copyrights kept).
fn slim(rootfs: &Path) -> anyhow::Result<()> {
    for dir in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        clear_files(&rootfs.join(dir))?;
    }
    const EXCLUDED: [&str; 7] = ["doc", "man", "groff", "info", "lintian", "linda", "locale"];
    let mut rules = String::new();
    for dir in EXCLUDED {
        rules.push_str(&format!("path-exclude /usr/share/{dir}/*\n"));
        let path = rootfs.join("usr/share").join(dir);
        if path.is_dir() {
            for entry in std::fs::read_dir(&path)?.flatten() {
                let keep = dir == "doc" && entry.path().join("copyright").exists();
                if keep {
                    // Only the copyright of each package stays.
                    for inner in std::fs::read_dir(entry.path())?.flatten() {
                        if inner.file_name() != "copyright" {
                            remove(&inner.path())?;
                        }
                    }
                } else {
                    remove(&entry.path())?;
                }
            }
        }
    }
    rules.push_str("path-include /usr/share/doc/*/copyright\n");
    let cfg = rootfs.join("etc/dpkg/dpkg.cfg.d");
    std::fs::create_dir_all(&cfg)?;
    std::fs::write(cfg.join("docker"), rules)?;
    // apt keeps no package caches (pkgcache.bin alone is ~80 MB after `apt-get update`) and
    // fetches no translations, as in the slim images.
    let apt = rootfs.join("etc/apt/apt.conf.d");
    std::fs::create_dir_all(&apt)?;
    let clean = "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb \
                 /var/cache/apt/*.bin || true";
    std::fs::write(
        apt.join("docker-clean"),
        format!(
            "DPkg::Post-Invoke {{ \"{clean}\"; }};\nAPT::Update::Post-Invoke {{ \"{clean}\"; }};\n\
             Dir::Cache::pkgcache \"\";\nDir::Cache::srcpkgcache \"\";\n"
        ),
    )?;
    std::fs::write(
        apt.join("docker-no-languages"),
        "Acquire::Languages \"none\";\n",
    )?;
    for cache in std::fs::read_dir(rootfs.join("var/cache/apt"))?.flatten() {
        if cache.path().extension().is_some_and(|e| e == "bin") {
            std::fs::remove_file(cache.path())?;
        }
    }
    Ok(())
}

fn remove(path: &Path) -> anyhow::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        std::fs::remove_dir_all(path)?;
    } else {
        std::fs::remove_file(path)?;
    }
    Ok(())
}

/// Removes the files (not the folder) in `dir`.
fn clear_files(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.path().is_file() {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}
