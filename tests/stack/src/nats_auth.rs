//! NATS users of the local stack: one per service and worker node, each with a random
//! password and the least-privilege permissions of `charts/magnetm3u8/files/nats-permissions.json`
//! (the chart renders the same file), written into the `nats-server` config.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// The permissions file, shared with the Helm chart.
const PERMISSIONS: &str = include_str!("../../../charts/magnetm3u8/files/nats-permissions.json");

/// Users and passwords of one stack.
#[derive(Debug, Default)]
pub struct Users {
    /// user → password
    passwords: BTreeMap<String, String>,
    conf: String,
}

/// The NATS user of a service (`gateway`, `signaling`) or of a node's service
/// (`downloader-<node>`, …).
pub fn user_of(service: &str, node: Option<&str>) -> String {
    match node {
        Some(n) => format!("{service}-{n}"),
        None => service.to_owned(),
    }
}

impl Users {
    /// Users for the gateway, signaling and each node's downloader, transcoder and streamer.
    pub fn new(nodes: &[String]) -> anyhow::Result<Self> {
        let permissions: serde_json::Value =
            serde_json::from_str(PERMISSIONS).context("nats-permissions.json")?;
        let mut users = Self::default();
        let mut entries = Vec::new();
        let mut add = |service: &str, node: Option<&str>| -> anyhow::Result<()> {
            let user = user_of(service, node);
            let fill = |s: &str| {
                s.replace("{node}", node.unwrap_or(""))
                    .replace("{user}", &user)
            };
            let p = &permissions[service];
            let list = |key: &str| -> anyhow::Result<String> {
                let v: Vec<String> = p[key]
                    .as_array()
                    .with_context(|| format!("{service}.{key} in nats-permissions.json"))?
                    .iter()
                    .filter_map(|s| s.as_str().map(fill))
                    .collect();
                Ok(serde_json::to_string(&v)?)
            };
            let password = super::random_token()?;
            entries.push(format!(
                "    {{user: {}, password: {}, permissions: {{publish: {{allow: {}}}, subscribe: {{allow: {}}}{}}}}}",
                serde_json::to_string(&user)?,
                serde_json::to_string(&password)?,
                list("publish")?,
                list("subscribe")?,
                if p["allow_responses"] == true {
                    ", allow_responses: true"
                } else {
                    ""
                },
            ));
            users.passwords.insert(user, password);
            Ok(())
        };
        add("gateway", None)?;
        add("signaling", None)?;
        for n in nodes {
            for service in ["downloader", "transcoder", "streamer"] {
                add(service, Some(n))?;
            }
        }
        users.conf = format!(
            "authorization {{\n  users = [\n{}\n  ]\n}}\n",
            entries.join(",\n")
        );
        Ok(users)
    }

    /// Writes the `nats-server` config (readable by this user only).
    pub fn write_conf(&self, path: &Path) -> anyhow::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        f.write_all(self.conf.as_bytes())?;
        Ok(())
    }

    /// `nats://user:password@host:port` for `user`, from the server's plain URL (or from a
    /// cluster's comma-separated URLs, each).
    pub fn url_for(&self, plain: &str, user: &str) -> anyhow::Result<String> {
        let password = self
            .passwords
            .get(user)
            .with_context(|| format!("no NATS user {user}"))?;
        let urls = plain
            .split(',')
            .map(|one| {
                let rest = one
                    .strip_prefix("nats://")
                    .with_context(|| format!("not a nats:// URL: {one}"))?;
                Ok(format!("nats://{user}:{password}@{rest}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(urls.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_of_every_node_gets_a_user() -> anyhow::Result<()> {
        let users = Users::new(&["node-1".into(), "node-2".into()])?;
        for user in [
            "gateway",
            "signaling",
            "downloader-node-2",
            "streamer-node-1",
        ] {
            assert!(users.conf.contains(&format!("user: \"{user}\"")), "{user}");
        }
        assert!(users.conf.contains("\"magnet.jobs.node-2\""));
        assert!(users.conf.contains("\"_INBOX_transcoder-node-1.>\""));
        assert!(!users.conf.contains("{node}"));
        let url = users.url_for("nats://127.0.0.1:4222", "gateway")?;
        assert!(url.starts_with("nats://gateway:") && url.ends_with("@127.0.0.1:4222"));
        Ok(())
    }
}
