//! The container images run as their pods run them, without a container engine. `cargo xtask
//! test` builds the five images with buildah (`xtask/src/images.rs`) and writes what the
//! chart gives each container (`xtask/py/pod_runtime.py`: environment, user, mounts,
//! read-only root); it tells the tests where through `MAGNET_BUILDAH` (buildah on the
//! images' storage) and `MAGNET_IMAGES_PODS`.
//!
//! A run: buildah makes a container of the image and mounts its root; the program starts in
//! a mount namespace of its own (`unshare --mount`) where that root is bind-mounted (read-only
//! when the pod's is), the pod's volumes are bound at their mount paths, `/proc` and `/dev`
//! are there, and `chroot --userspec` enters it as the pod's user. The network is the host's,
//! so services bound to loopback reach one another and the tests.

use std::collections::BTreeMap;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use magnet_stack::Wrap;

/// The five services, one image each.
pub use magnet_stack::SERVICES;

/// The shell that sets up a run's mounts and enters the root; its arguments are the root,
/// the mount folder, `uid:gid`, `1` for a read-only root, then `<ro|rw> <path> <source>`
/// triples, `--`, and the program with its arguments.
const ENTER: &str = r#"set -eu
root=$1 mnt=$2 user=$3 ro=$4; shift 4
mkdir -p "$mnt"
mount --bind "$root" "$mnt"
mount -t proc proc "$mnt/proc"
mount --rbind /dev "$mnt/dev"
while [ "$1" != -- ]; do
  mkdir -p "$mnt$2"
  mount --bind "$3" "$mnt$2"
  if [ "$1" = ro ]; then mount -o remount,bind,ro "$mnt$2"; fi
  shift 3
done
shift
if [ "$ro" = 1 ]; then mount -o remount,bind,ro "$mnt"; fi
exec chroot --userspec="$user" "$mnt" "$@"
"#;

/// The images `cargo xtask test` built.
#[derive(Debug, Clone)]
pub struct Images {
    /// buildah on the images' storage (a script xtask writes).
    buildah: PathBuf,
    pods: PathBuf,
}

impl Images {
    /// The images, or why there are none (the tests then say so and pass).
    pub fn from_env() -> Result<Self, String> {
        match (
            std::env::var_os("MAGNET_BUILDAH"),
            std::env::var_os("MAGNET_IMAGES_PODS"),
        ) {
            (Some(buildah), Some(pods)) => Ok(Self {
                buildah: buildah.into(),
                pods: pods.into(),
            }),
            _ => Err(
                "no images: `cargo xtask test` builds them when buildah can be had \
                      (MAGNET_BUILDAH and MAGNET_IMAGES_PODS are not set)"
                    .into(),
            ),
        }
    }

    /// The image of `service`, as the tests tag it.
    pub fn image(service: &str) -> String {
        format!("localhost/magnetm3u8-{service}:test")
    }

    /// `buildah` on the images' storage.
    pub fn buildah(&self) -> Command {
        Command::new(&self.buildah)
    }

    /// A new container of `service`'s image, its root mounted.
    pub fn container(&self, service: &str) -> anyhow::Result<Container> {
        let id =
            self.output(
                self.buildah()
                    .args(["from", "--pull=never", &Self::image(service)]),
            )?;
        let root = PathBuf::from(self.output(self.buildah().args(["mount", &id]))?);
        let mnt = std::env::temp_dir().join(format!("magnet-root-{id}"));
        Ok(Container {
            buildah: self.clone(),
            id,
            root,
            mnt,
        })
    }

    /// What the chart gives `service`'s container.
    pub fn pod(&self, service: &str) -> anyhow::Result<Pod> {
        let dir = self.pods.join(service);
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .with_context(|| format!("{}", dir.join(name).display()))
        };
        let env = read("env")?
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let mounts = read("mounts")?
            .lines()
            .filter_map(|l| {
                let mut parts = l.splitn(3, ' ');
                let (mode, path, source) = (parts.next()?, parts.next()?, parts.next()?);
                Some(Mount {
                    read_only: mode == "ro",
                    path: path.to_owned(),
                    source: source.into(),
                })
            })
            .collect();
        Ok(Pod {
            env,
            user: read("user")?.trim().to_owned(),
            read_only_root: dir.join("read_only_root").exists(),
            mounts,
        })
    }

    /// A [`Wrap`] that makes `magnet_stack` run each service in a new container of its image,
    /// as the chart's pod runs it (user, read-only root, `/tmp`), with the stack's environment,
    /// its config file in a folder mounted at `/etc/magnetm3u8`, and the node's data folder
    /// mounted at `/data` as the chart mounts the node's volume. Keep the [`Containers`] until
    /// the stack has stopped.
    pub fn wrap(&self) -> (Wrap, Containers) {
        let containers = Containers::default();
        let (images, kept) = (self.clone(), containers.clone());
        let wrap = move |service: &str, cmd: Command| -> anyhow::Result<Command> {
            let mut pod = images.pod(service)?;
            let mut env: BTreeMap<String, String> = cmd
                .get_envs()
                .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
                .collect();
            if let Some(data) = env.insert("MAGNET__STORAGE__DATA_DIR".into(), "/data".into()) {
                std::fs::create_dir_all(&data)?;
                pod.volume("/data", Path::new(&data))?;
            }
            pod.env = env;
            let mut args: Vec<String> = cmd
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            if let Some(i) = args.iter().position(|a| a == "--config") {
                let config = PathBuf::from(args.get(i + 1).context("--config without a file")?);
                let (Some(folder), Some(name)) = (config.parent(), config.file_name()) else {
                    bail!("config {} is not a file in a folder", config.display());
                };
                pod.bind("/etc/magnetm3u8", folder)?;
                args[i + 1] = format!("/etc/magnetm3u8/{}", name.to_string_lossy());
            }
            let ctr = images.container(service)?;
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let wrapped = ctr.command(&pod, &format!("/usr/local/bin/magnet-{service}"), &args)?;
            kept.0.lock().unwrap_or_else(|e| e.into_inner()).push(ctr);
            Ok(wrapped)
        };
        (Wrap(Arc::new(wrap)), containers)
    }

    fn output(&self, cmd: &mut Command) -> anyhow::Result<String> {
        let out = cmd.output().context("cannot run buildah")?;
        if !out.status.success() {
            bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

/// A volume of a pod, bound at `path`.
#[derive(Debug, Clone)]
pub struct Mount {
    pub read_only: bool,
    pub path: String,
    pub source: PathBuf,
}

/// What the chart gives a container: environment, `uid:gid`, root, volumes.
#[derive(Debug, Clone)]
pub struct Pod {
    pub env: BTreeMap<String, String>,
    pub user: String,
    pub read_only_root: bool,
    pub mounts: Vec<Mount>,
}

impl Pod {
    /// Binds the volume at `path` to `source` instead (a test's own folder), owned by the
    /// pod's user as the kubelet's `fsGroup` makes a volume writable.
    pub fn volume(&mut self, path: &str, source: &Path) -> anyhow::Result<()> {
        let (uid, gid) = self.ids()?;
        chown(source, Some(uid), Some(gid))?;
        self.bind(path, source)
    }

    /// Binds the volume at `path` to `source` instead, as it is.
    pub fn bind(&mut self, path: &str, source: &Path) -> anyhow::Result<()> {
        match self.mounts.iter_mut().find(|m| m.path == path) {
            Some(m) => m.source = source.to_owned(),
            None => bail!("the pod mounts nothing at {path}"),
        }
        Ok(())
    }

    fn ids(&self) -> anyhow::Result<(u32, u32)> {
        let (u, g) = self.user.split_once(':').context("user is uid:gid")?;
        Ok((u.parse()?, g.parse()?))
    }
}

/// The containers of a [`Images::wrap`]; removed when the last clone is dropped.
#[derive(Default, Clone)]
pub struct Containers(Arc<Mutex<Vec<Container>>>);

/// A container of an image with its root mounted; removed when dropped.
pub struct Container {
    buildah: Images,
    id: String,
    root: PathBuf,
    mnt: PathBuf,
}

impl Container {
    /// The image's root on the host.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `program args…` run in the container as `pod` says, with `env` added.
    pub fn command(&self, pod: &Pod, program: &str, args: &[&str]) -> anyhow::Result<Command> {
        // Writable volumes belong to the pod's user (the kubelet's fsGroup).
        let (uid, gid) = pod.ids()?;
        for m in pod.mounts.iter().filter(|m| !m.read_only) {
            std::fs::create_dir_all(&m.source)?;
            chown(&m.source, Some(uid), Some(gid))?;
        }
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            ENTER,
            "sh",
        ])
        .arg(&self.root)
        .arg(&self.mnt)
        .arg(&pod.user)
        .arg(if pod.read_only_root { "1" } else { "0" });
        for m in &pod.mounts {
            cmd.arg(if m.read_only { "ro" } else { "rw" })
                .arg(&m.path)
                .arg(&m.source);
        }
        cmd.arg("--").arg(program).args(args);
        cmd.env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .envs(&pod.env);
        Ok(cmd)
    }

    /// Runs `program args…` as `command` does; its output, or an error with it.
    pub fn run(&self, pod: &Pod, program: &str, args: &[&str]) -> anyhow::Result<String> {
        let out = self.command(pod, program, args)?.output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            bail!(
                "{program} {args:?} in the image failed ({}): {text}",
                out.status
            );
        }
        Ok(text)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.buildah.buildah().args(["umount", &self.id]).output();
        let _ = self.buildah.buildah().args(["rm", &self.id]).output();
        let _ = std::fs::remove_dir(&self.mnt);
    }
}
