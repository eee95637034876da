"""Assertions on the chart's rendered objects, run by `cargo xtask chart` (python -m unittest)
with HELM (the helm binary), CHART (the chart folder), RENDERED (folder of `helm template`
outputs, one <values-name>.yaml each) and BIN_DIR (our service binaries) in the environment.
"""
import json
import os
import subprocess
import unittest

import jsonschema
import yaml

HELM = os.environ["HELM"]
CHART = os.environ["CHART"]
RENDERED = os.environ["RENDERED"]
BIN_DIR = os.environ["BIN_DIR"]
OURS = {"gateway", "signaling", "downloader", "transcoder", "streamer"}


def objects(name):
    with open(os.path.join(RENDERED, name + ".yaml")) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def find(objs, kind, name):
    hits = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    if len(hits) != 1:
        raise AssertionError(f"{kind}/{name}: {len(hits)} found")
    return hits[0]


def claims(pod_spec):
    return {
        v["persistentVolumeClaim"]["claimName"]
        for v in pod_spec.get("volumes", [])
        if "persistentVolumeClaim" in v
    }


class Chart(unittest.TestCase):
    def test_each_worker_mounts_one_claim_in_all_three_services(self):
        for values, workers in [("default", ["worker-a"]), ("two-workers", ["worker-a", "worker-b"])]:
            objs = objects(values)
            for w in workers:
                sts = find(objs, "StatefulSet", f"mm-{w}-downloader")
                [template] = sts["spec"]["volumeClaimTemplates"]
                claim = f"{template['metadata']['name']}-mm-{w}-downloader-0"
                mounts = {m["name"]: m for m in sts["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
                self.assertEqual(mounts[template["metadata"]["name"]]["mountPath"], "/data")
                for kind in ("transcoder", "streamer"):
                    spec = find(objs, "Deployment", f"mm-{w}-{kind}")["spec"]["template"]["spec"]
                    self.assertEqual(claims(spec), {claim}, f"{values} {w} {kind}")
                streamer = find(objs, "Deployment", f"mm-{w}-streamer")["spec"]["template"]["spec"]
                self.assertTrue(
                    all(m.get("readOnly") for m in streamer["containers"][0]["volumeMounts"] if m["name"] == "data"),
                    "the streamer only reads the volume",
                )

    def test_transcoder_replicas_follow_values(self):
        objs = objects("two-workers")
        self.assertEqual(find(objs, "Deployment", "mm-worker-a-transcoder")["spec"]["replicas"], 3)
        self.assertEqual(find(objs, "Deployment", "mm-worker-b-transcoder")["spec"]["replicas"], 1)
        autoscaled = find(objects("rwx-p2p"), "Deployment", "mm-worker-a-transcoder")
        self.assertNotIn("replicas", autoscaled["spec"], "the autoscaler owns the replicas")

    def test_pods_follow_their_volume_only_when_it_is_read_write_once(self):
        rwo = find(objects("default"), "Deployment", "mm-worker-a-transcoder")["spec"]["template"]["spec"]
        terms = rwo["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        self.assertEqual(terms[0]["labelSelector"]["matchLabels"]["app.kubernetes.io/component"], "downloader")
        self.assertEqual(terms[0]["labelSelector"]["matchLabels"]["magnetm3u8.io/worker"], "worker-a")
        rwx = find(objects("rwx-p2p"), "Deployment", "mm-worker-a-transcoder")["spec"]["template"]["spec"]
        self.assertNotIn("affinity", rwx)

    def test_rbac_only_for_the_autoscaler_and_only_its_scale(self):
        # Without the autoscaler no service needs the Kubernetes API: no RBAC, no token.
        for values in ("default", "two-workers", "external-nats"):
            objs = objects(values)
            kinds = {o["kind"] for o in objs}
            self.assertFalse(kinds & {"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding", "ServiceAccount"}, values)
            for o in objs:
                if o["kind"] in ("Deployment", "StatefulSet"):
                    self.assertIs(o["spec"]["template"]["spec"]["automountServiceAccountToken"], False, o["metadata"]["name"])
        objs = objects("rwx-p2p")
        self.assertFalse([o for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding")])
        [role] = [o for o in objs if o["kind"] == "Role"]
        self.assertEqual(role["rules"], [{
            "apiGroups": ["apps"], "resources": ["deployments/scale"],
            "resourceNames": ["mm-worker-a-transcoder"], "verbs": ["get", "patch"],
        }])
        [binding] = [o for o in objs if o["kind"] == "RoleBinding"]
        self.assertEqual(binding["roleRef"]["name"], role["metadata"]["name"])
        self.assertEqual(binding["subjects"], [{"kind": "ServiceAccount", "name": "mm-worker-a-downloader", "namespace": "media"}])
        dl = find(objs, "StatefulSet", "mm-worker-a-downloader")["spec"]["template"]["spec"]
        self.assertEqual(dl["serviceAccountName"], "mm-worker-a-downloader")
        self.assertIs(dl["automountServiceAccountToken"], True)
        env = {e["name"]: e.get("value") for e in dl["containers"][0]["env"]}
        self.assertEqual(env["MAGNET__DOWNLOADER__AUTOSCALE__DEPLOYMENT"], "mm-worker-a-transcoder")
        self.assertEqual((env["MAGNET__DOWNLOADER__AUTOSCALE__MIN"], env["MAGNET__DOWNLOADER__AUTOSCALE__MAX"]), ("1", "6"))
        self.assertEqual(env["MAGNET__DOWNLOADER__AUTOSCALE__JOBS_PER_REPLICA"], "2")
        for o in objs:
            if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"]["name"] != "mm-worker-a-downloader":
                self.assertIs(o["spec"]["template"]["spec"]["automountServiceAccountToken"], False, o["metadata"]["name"])

    def test_hardened_pods(self):
        for o in objects("two-workers"):
            if o["kind"] not in ("Deployment", "StatefulSet"):
                continue
            spec = o["spec"]["template"]["spec"]
            self.assertTrue(spec["securityContext"]["runAsNonRoot"], o["metadata"]["name"])
            for c in spec["containers"]:
                sc = c["securityContext"]
                self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
                self.assertTrue(sc["readOnlyRootFilesystem"])
                self.assertFalse(sc["allowPrivilegeEscalation"])
                self.assertIn("readinessProbe", c)
                self.assertIn("livenessProbe", c)
            labels = o["metadata"]["labels"]
            for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component",
                        "app.kubernetes.io/version", "app.kubernetes.io/managed-by"):
                self.assertIn(key, labels)

    def test_external_nats_replaces_the_bundled_one(self):
        objs = objects("external-nats")
        self.assertFalse([o for o in objs if o["metadata"]["name"].startswith("mm-nats")])
        gw = find(objs, "Deployment", "mm-gateway")["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in gw["env"]}
        self.assertEqual(env["MAGNET__NATS__URL"]["valueFrom"]["secretKeyRef"]["name"], "nats-credentials")
        self.assertEqual(env["MAGNET__GATEWAY__AUTH__ADMIN_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"], "magnetm3u8-admin")
        self.assertFalse([o for o in objs if o["kind"] == "Secret"], "an existing Secret is used, none is made")

    def test_streamer_ports_when_exposed(self):
        spec = find(objects("rwx-p2p"), "Deployment", "mm-worker-a-streamer")["spec"]["template"]["spec"]
        udp = [p for p in spec["containers"][0]["ports"] if p.get("protocol") == "UDP"]
        self.assertEqual([p["hostPort"] for p in udp], [50000, 50001, 50002, 50003])
        none = find(objects("default"), "Deployment", "mm-worker-a-streamer")["spec"]["template"]["spec"]
        self.assertFalse([p for p in none["containers"][0]["ports"] if p.get("protocol") == "UDP"])

    def test_every_service_accepts_the_rendered_config(self):
        for values in ("default", "two-workers", "external-nats", "rwx-p2p", "observability", "turn", "nats-cluster"):
            objs = objects(values)
            config = find(objs, "ConfigMap", "mm-config")["data"]["config.json"]
            path = os.path.join(RENDERED, values + ".config.json")
            with open(path, "w") as f:
                f.write(config)
            for service in sorted(OURS):
                # The config file plus the environment and flags the chart gives the pods;
                # values from Secrets are stand-ins.
                env = {"PATH": os.environ.get("PATH", "")}
                args = []
                for o in objs:
                    if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"]["labels"]["app.kubernetes.io/component"] == service:
                        container = o["spec"]["template"]["spec"]["containers"][0]
                        env.update({e["name"]: e["value"] for e in container["env"] if "value" in e})
                        env.update({
                            e["name"]: "stand-in-secret-0123456789"
                            for e in container["env"]
                            if "secretKeyRef" in e.get("valueFrom", {}) and e["name"].startswith("MAGNET__")
                        })
                        args = container.get("args", [])
                        break
                env.pop("MAGNET_CONFIG", None)
                out = subprocess.run(
                    [os.path.join(BIN_DIR, "magnet-" + service), "--config", path, *args, "--check-config"],
                    capture_output=True, text=True, env=env,
                )
                self.assertEqual(out.returncode, 0, f"{values} {service}: {out.stderr}")

    def test_nats_cluster_of_three(self):
        objs = objects("nats-cluster")
        sts = find(objs, "StatefulSet", "mm-nats")
        self.assertEqual(sts["spec"]["replicas"], 3)
        self.assertEqual(sts["spec"]["podManagementPolicy"], "Parallel")
        spec = sts["spec"]["template"]["spec"]
        term = spec["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
        self.assertEqual(term["topologyKey"], "kubernetes.io/hostname")
        self.assertIn({"name": "cluster", "containerPort": 6222}, spec["containers"][0]["ports"])
        conf = find(objs, "ConfigMap", "mm-nats")["data"]["nats.conf"]
        self.assertIn("server_name: $POD_NAME", conf)
        for i in range(3):
            self.assertIn(f"nats://mm-nats-{i}.mm-nats-headless:6222", conf)
        headless = find(objs, "Service", "mm-nats-headless")["spec"]
        self.assertTrue(headless["publishNotReadyAddresses"])
        self.assertIn(6222, [p["port"] for p in headless["ports"]])
        self.assertEqual(find(objs, "PodDisruptionBudget", "mm-nats")["spec"]["maxUnavailable"], 1)
        config = json.loads(find(objs, "ConfigMap", "mm-config")["data"]["config.json"])
        self.assertEqual(config["nats"]["replicas"], 3)
        policy = find(objs, "NetworkPolicy", "mm-nats")
        self.assertTrue(any(p["port"] == 6222 for r in policy["spec"]["ingress"] for p in r.get("ports", [])))
        # One server: no cluster, no budget, one replica in the services' config.
        default = objects("default")
        self.assertNotIn("cluster {", find(default, "ConfigMap", "mm-nats")["data"]["nats.conf"])
        self.assertFalse([o for o in default if o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"] == "mm-nats"])
        self.assertEqual(json.loads(find(default, "ConfigMap", "mm-config")["data"]["config.json"])["nats"]["replicas"], 1)

    def test_turn_with_the_charts_coturn(self):
        objs = objects("turn")
        secret = find(objs, "Secret", "mm-turn")
        self.assertTrue(secret["stringData"]["secret"], "a TURN secret is generated")
        config = json.loads(find(objs, "ConfigMap", "mm-config")["data"]["config.json"])
        self.assertEqual(config["turn"]["urls"], [
            "turn:turn.example.org:3478?transport=udp",
            "turn:203.0.113.20:3478?transport=udp",
        ])
        self.assertEqual(config["turn"]["ttl_secs"], 1800)
        self.assertEqual(config["turn"]["cloudflare"], {"key_id": "cf-key-123"})
        self.assertEqual(find(objs, "Secret", "mm-cloudflare-turn")["stringData"]["apiToken"], "cloudflare-token-for-the-chart-test")
        # The gateway and every streamer get the same secret; coturn checks it.
        for kind, name in [("Deployment", "mm-gateway"), ("Deployment", "mm-worker-a-streamer"), ("Deployment", "mm-turn")]:
            container = find(objs, kind, name)["spec"]["template"]["spec"]["containers"][0]
            refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
            key = "TURN_SECRET" if name == "mm-turn" else "MAGNET__TURN__SECRET"
            self.assertEqual(refs[key], {"name": "mm-turn", "key": "secret"}, name)
            if name != "mm-turn":
                self.assertEqual(refs["MAGNET__TURN__CLOUDFLARE__API_TOKEN"], {"name": "mm-cloudflare-turn", "key": "apiToken"}, name)
        coturn = find(objs, "Deployment", "mm-turn")["spec"]["template"]["spec"]["containers"][0]
        self.assertIn("--use-auth-secret", coturn["args"])
        self.assertIn("--static-auth-secret=$(TURN_SECRET)", coturn["args"])
        self.assertIn("--external-ip=203.0.113.20", coturn["args"])
        service = find(objs, "Service", "mm-turn")
        self.assertEqual(service["spec"]["type"], "LoadBalancer")
        self.assertEqual(sorted(p["port"] for p in service["spec"]["ports"]), [3478, 49160, 49161, 49162, 49163])
        self.assertTrue(all(p["protocol"] == "UDP" for p in service["spec"]["ports"]))
        # Streamers take coturn's relayed packets.
        policy = find(objs, "NetworkPolicy", "mm-worker-a-streamer")
        froms = [r for r in policy["spec"]["ingress"] if any(p.get("protocol") == "UDP" for p in r.get("ports", []))]
        self.assertTrue(any(f.get("from", [{}])[0].get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") == "turn" for f in froms), policy)
        # Without TURN, nothing of it.
        default = objects("default")
        self.assertFalse([o for o in default if o["metadata"]["name"] == "mm-turn"])
        self.assertNotIn("turn", json.loads(find(default, "ConfigMap", "mm-config")["data"]["config.json"]))

    def test_observability_values(self):
        objs = objects("observability")
        with open(os.path.join(os.path.dirname(__file__), "servicemonitor.schema.json")) as f:
            schema = json.load(f)
        monitors = [o for o in objs if o["kind"] == "ServiceMonitor"]
        self.assertEqual(sorted(m["metadata"]["name"] for m in monitors),
                         ["mm-downloader", "mm-gateway", "mm-signaling", "mm-streamer", "mm-transcoder"])
        services = [o for o in objs if o["kind"] == "Service"]
        for m in monitors:
            jsonschema.validate(m, schema)
            self.assertEqual(m["metadata"]["labels"]["release"], "prometheus")
            # Each selects at least one Service that has the admin port it scrapes.
            want = m["spec"]["selector"]["matchLabels"]
            hits = [s for s in services if all(s["metadata"]["labels"].get(k) == v for k, v in want.items())]
            with_admin = [s for s in hits if "admin" in [p["name"] for p in s["spec"]["ports"]]]
            self.assertTrue(with_admin, m["metadata"]["name"])
        # The public gateway Service does not expose the admin port.
        gw = find(objs, "Service", "mm-gateway")
        self.assertEqual([p["name"] for p in gw["spec"]["ports"]], ["http"])
        self.assertEqual(find(objs, "Service", "mm-gateway-admin")["spec"]["type"], "ClusterIP")
        for o in objs:
            if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"]["name"] != "mm-nats":
                spec = o["spec"]["template"]
                env = {e["name"]: e.get("value") for e in spec["spec"]["containers"][0]["env"]}
                self.assertEqual(env["OTEL_EXPORTER_OTLP_ENDPOINT"], "http://otel-collector.observability:4317")
                self.assertNotIn("prometheus.io/scrape", spec["metadata"].get("annotations", {}))
        # Without ServiceMonitors, pods carry scrape annotations for their admin port.
        for o in objects("default"):
            if o["kind"] in ("Deployment", "StatefulSet") and o["metadata"]["name"] != "mm-nats":
                ann = o["spec"]["template"]["metadata"]["annotations"]
                ports = {p["name"]: p["containerPort"] for p in o["spec"]["template"]["spec"]["containers"][0]["ports"]}
                self.assertEqual(ann["prometheus.io/scrape"], "true")
                self.assertEqual(int(ann["prometheus.io/port"]), ports["admin"])

    def test_services_present_the_credential_from_a_secret(self):
        for values, secret in [("default", "mm-internal"), ("external-nats", "magnetm3u8-internal")]:
            objs = objects(values)
            for o in objs:
                if o["kind"] not in ("Deployment", "StatefulSet") or o["metadata"]["name"] == "mm-nats":
                    continue
                env = {e["name"]: e for e in o["spec"]["template"]["spec"]["containers"][0]["env"]}
                ref = env["MAGNET__INTERNAL__TOKEN"]["valueFrom"]["secretKeyRef"]
                self.assertEqual((ref["name"], ref["key"]), (secret, "token"), o["metadata"]["name"])
        token = find(objects("default"), "Secret", "mm-internal")["stringData"]["token"]
        self.assertGreaterEqual(len(token), 16)

    def test_bundled_nats_has_a_user_per_service_and_node(self):
        objs = objects("two-workers")
        conf = find(objs, "ConfigMap", "mm-nats")["data"]["nats.conf"]
        users = {"gateway", "signaling"} | {f"{s}-{w}" for s in ("downloader", "transcoder", "streamer")
                                            for w in ("worker-a", "worker-b")}
        keys = set(find(objs, "Secret", "mm-nats-users")["stringData"])
        self.assertEqual(keys, {"NATS_PW_" + u.replace("-", "_") for u in users})
        for u in users:
            self.assertIn(f'{{user: "{u}", password: $NATS_PW_{u.replace("-", "_")}', conf)
        # Least privilege: worker-a's transcoder consumes only worker-a's jobs; only the
        # gateway touches the users bucket.
        line = next(l for l in conf.splitlines() if '"transcoder-worker-a"' in l)
        self.assertIn('"$JS.API.CONSUMER.MSG.NEXT.MAGNET_JOBS.transcoder-worker-a"', line)
        self.assertNotIn("worker-b", line)
        self.assertEqual([l for l in conf.splitlines() if "magnet_users" in l and "user: \"gateway\"" not in l], [])
        # nats-server itself accepts the config (variables from the Secret's keys).
        path = os.path.join(RENDERED, "nats.conf")
        with open(path, "w") as f:
            f.write(conf.replace("store_dir: /data", "store_dir: " + os.path.join(RENDERED, "nats-store")))
        env = dict(os.environ, **{k: "stand-in-password" for k in keys})
        out = subprocess.run(["nats-server", "-t", "-c", path], capture_output=True, text=True, env=env)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        # Each service connects as its own user, password from the Secret.
        for name, user in [("mm-gateway", "gateway"), ("mm-worker-b-streamer", "streamer-worker-b")]:
            kind = "Deployment"
            spec = find(objs, kind, name)["spec"]["template"]["spec"]["containers"][0]
            env = {e["name"]: e for e in spec["env"]}
            self.assertEqual(env["MAGNET__NATS__URL"]["value"], f"nats://{user}:$(NATS_PASSWORD)@mm-nats:4222")
            ref = env["NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]
            self.assertEqual((ref["name"], ref["key"]), ("mm-nats-users", "NATS_PW_" + user.replace("-", "_")))
            names = [e["name"] for e in spec["env"]]
            self.assertLess(names.index("NATS_PASSWORD"), names.index("MAGNET__NATS__URL"), "defined before use")
        nats = find(objs, "StatefulSet", "mm-nats")["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(nats["envFrom"], [{"secretRef": {"name": "mm-nats-users"}}])

    def test_registration_is_off_and_accounts_on_by_default(self):
        gw = find(objects("default"), "Deployment", "mm-gateway")["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in gw["env"]}
        self.assertEqual(env["MAGNET__GATEWAY__AUTH__ENABLED"], "true")
        self.assertEqual(env["MAGNET__GATEWAY__AUTH__ALLOW_REGISTER"], "false")

    def test_network_policies_let_only_the_gateway_reach_internal_services(self):
        objs = objects("two-workers")
        policies = {o["metadata"]["name"]: o for o in objs if o["kind"] == "NetworkPolicy"}
        want = {"mm-gateway", "mm-signaling", "mm-nats"}
        for w in ("worker-a", "worker-b"):
            want |= {f"mm-{w}-downloader", f"mm-{w}-streamer", f"mm-{w}-transcoder"}
        self.assertEqual(set(policies), want)
        gateway_pods = {"app.kubernetes.io/instance": "mm", "app.kubernetes.io/component": "gateway"}

        def rule_for(policy, port):
            hits = [r for r in policy["spec"]["ingress"] if any(p["port"] == port for p in r["ports"])]
            self.assertEqual(len(hits), 1, f"{policy['metadata']['name']} port {port}")
            return hits[0]

        for name, port in [("mm-signaling", 50053), ("mm-worker-a-downloader", 50051),
                           ("mm-worker-b-downloader", 50051), ("mm-worker-a-streamer", 50052)]:
            p = policies[name]
            self.assertEqual(p["spec"]["policyTypes"], ["Ingress"])
            self.assertEqual(rule_for(p, port)["from"], [{"podSelector": {"matchLabels": gateway_pods}}], name)
        # A downloader's file streams answer its own node's transcoders only.
        transcoders = {"app.kubernetes.io/instance": "mm", "app.kubernetes.io/component": "transcoder",
                       "magnetm3u8.io/worker": "worker-b"}
        self.assertEqual(rule_for(policies["mm-worker-b-downloader"], 50054)["from"],
                         [{"podSelector": {"matchLabels": transcoders}}])
        # Each selects its own pods: a worker's policy does not cover the other worker.
        self.assertEqual(policies["mm-worker-b-downloader"]["spec"]["podSelector"]["matchLabels"]["magnetm3u8.io/worker"], "worker-b")
        # The gateway and BitTorrent are open; NATS answers this release's pods only.
        self.assertNotIn("from", rule_for(policies["mm-gateway"], 8080))
        self.assertNotIn("from", rule_for(policies["mm-worker-a-downloader"], 4240))
        nats = rule_for(policies["mm-nats"], 4222)["from"][0]["podSelector"]["matchLabels"]
        self.assertEqual(nats["app.kubernetes.io/instance"], "mm")
        # Only ports named here are open: the transcoder has its admin port alone.
        self.assertEqual([p["port"] for r in policies["mm-worker-a-transcoder"]["spec"]["ingress"] for p in r["ports"]], [9102])
        # WebRTC's UDP range when the streamer is exposed.
        streamer = {o["metadata"]["name"]: o for o in objects("rwx-p2p") if o["kind"] == "NetworkPolicy"}["mm-worker-a-streamer"]
        udp = [p for r in streamer["spec"]["ingress"] for p in r["ports"] if p["protocol"] == "UDP"]
        self.assertEqual(udp, [{"port": 50000, "endPort": 50003, "protocol": "UDP"}])

    def test_notes_say_how_to_reach_and_scale(self):
        out = subprocess.run(
            [HELM, "install", "mm", CHART, "--dry-run=client", "--namespace", "media", "-f",
             os.path.join(CHART, "ci", "two-workers.yaml")],
            capture_output=True, text=True, check=True,
        ).stdout
        notes = out.split("NOTES:", 1)[1]
        self.assertIn("kubectl --namespace media port-forward svc/mm-gateway 8080:8080", notes)
        self.assertIn("kubectl --namespace media scale deployment mm-worker-a-transcoder --replicas=4", notes)
        self.assertIn("kubectl --namespace media scale deployment mm-worker-b-transcoder --replicas=4", notes)

    def test_schema_rejects_misspelt_keys_and_wrong_types(self):
        for flag, says in [
            ("gateway.replica=3", "additional properties 'replica' not allowed"),
            ("workers[0].storage.acessMode=ReadWriteOnce", "additional properties 'acessMode' not allowed"),
            ("gateway.replicas=many", "want integer"),
            ("streamer.exposure=public", "streamer/exposure"),
            ("streamer.exposure=nodePort", "maximum"),
            ("workers[0].storage.accessMode=ReadWriteOncePod", "accessMode"),
        ]:
            out = subprocess.run([HELM, "template", "mm", CHART, "--set", flag], capture_output=True, text=True)
            self.assertNotEqual(out.returncode, 0, flag)
            self.assertIn(says, out.stderr, flag)


if __name__ == "__main__":
    unittest.main()
