// Launching Debian's Chromium for the end-to-end script (run.mjs) and the browser benchmark
// (bench.mjs): headless, a fresh profile, WebRTC allowed on loopback, autoplay without a
// gesture.
import { chromium } from 'playwright-core';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Starts Chromium (`CHROMIUM` or /usr/bin/chromium) with a fresh profile; `noUdp` leaves
 * WebRTC without UDP candidates, so P2P really fails; `bypassCSP` lets a script be added to
 * any page (the benchmark's); `locale` is the browser's language (`navigator.languages`,
 * `Accept-Language`). Returns the context and `close()`, which also removes the profile.
 */
export async function launch({ noUdp = false, bypassCSP = false, locale = 'en-US' } = {}) {
  const args = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--allow-loopback-in-peer-connection',
    '--disable-features=WebRtcHideLocalIpsWithMdns',
    '--autoplay-policy=no-user-gesture-required',
  ];
  // Chromium 156 ignores the command-line switch; the profile preference
  // `webrtc.ip_handling_policy` is what takes effect, so both are set.
  const profile = await mkdtemp(join(tmpdir(), 'magnetm3u8-e2e-'));
  if (noUdp) {
    args.push('--force-webrtc-ip-handling-policy=disable_non_proxied_udp');
    await mkdir(join(profile, 'Default'), { recursive: true });
    const prefs = { webrtc: { ip_handling_policy: 'disable_non_proxied_udp' } };
    await writeFile(join(profile, 'Default', 'Preferences'), JSON.stringify(prefs));
  }
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args,
    viewport: { width: 1280, height: 900 },
    locale,
    bypassCSP,
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      await rm(profile, { recursive: true, force: true }).catch(() => {});
    },
  };
}
