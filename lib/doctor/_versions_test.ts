import assert, { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  bareVersion,
  helmVersion,
  kernelVersion,
  kubectlVersion,
  minorOf,
  parseVersion,
  qemuImgVersion,
  sshVersion,
  vboxVersion,
  versionAtLeast,
} from "./_versions.ts";

Deno.test("parseVersion reads the numeric prefix of every format tools print", () => {
  assertEquals(parseVersion("9.2p1"), [9, 2, 1]);
  assertEquals(parseVersion("v1.32.4-dispatcher"), [1, 32, 4]);
  assertEquals(parseVersion("7.0.18r162988"), [7, 0, 18]);
  assertEquals(parseVersion("7.0.16_Ubuntur162802"), [7, 0, 16]);
  assertEquals(parseVersion("v4.1.1+g5caf004"), [4, 1, 1]);
  assertEquals(parseVersion("not a version"), undefined);
});

Deno.test("versionAtLeast compares numerically, not as strings", () => {
  assert(versionAtLeast("10.0.0", "9.0.0"));
  assert(!versionAtLeast("9.10.0", "10.0"));
  assert(versionAtLeast("9.2p1", "7.6"));
  assert(versionAtLeast("7.6", "7.6"));
  assert(!versionAtLeast("7.5p1", "7.6"));
  assert(versionAtLeast("8.0", "8.0.0"));
  assert(!versionAtLeast("garbage", "1.0"));
});

Deno.test("sshVersion reads Debian, Ubuntu and Fedora banners", () => {
  assertEquals(
    sshVersion("OpenSSH_9.2p1 Debian-2+deb12u6, OpenSSL 3.0.19 27 Jan 2026\n"),
    "9.2p1",
  );
  assertEquals(sshVersion("OpenSSH_9.6p1 Ubuntu-3ubuntu13.5, OpenSSL 3.0.13 30 Jan 2024"), "9.6p1");
  assertEquals(sshVersion("OpenSSH_9.9p1, OpenSSL 3.2.4 11 Feb 2025"), "9.9p1");
  assertEquals(sshVersion("usage: ssh [-46AaCf…]"), undefined);
});

Deno.test("kubectlVersion reads the 1.24–1.27 and the 1.28+ formats", () => {
  const old =
    `WARNING: This version information is deprecated and will be replaced with the output from kubectl version --short.  Use --output=yaml|json to get the full version.
Client Version: version.Info{Major:"1", Minor:"27", GitVersion:"v1.27.4", GitCommit:"fa3d7990104d7c1f16943a67f11b154b71f6a132", GitTreeState:"clean", BuildDate:"2023-07-19T12:20:54Z", GoVersion:"go1.20.6", Compiler:"gc", Platform:"linux/amd64"}
Kustomize Version: v5.0.1
`;
  assertEquals(kubectlVersion(old), "1.27.4");
  assertEquals(kubectlVersion("Client Version: v1.35.0\nKustomize Version: v5.7.1\n"), "1.35.0");
  assertEquals(kubectlVersion("Client Version: v1.32.4-dispatcher\n"), "1.32.4-dispatcher");
  assertEquals(kubectlVersion("Kustomize Version: v5.7.1\n"), undefined);
});

Deno.test("helm, qemu-img, virsh and VBoxManage extractors", () => {
  assertEquals(helmVersion("v3.14.4+g81c902a\n"), "3.14.4");
  assertEquals(helmVersion("v4.1.1+g5caf004\n"), "4.1.1");
  assertEquals(
    qemuImgVersion(
      "qemu-img version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022 Fabrice Bellard and the QEMU Project developers\n",
    ),
    "7.2.22",
  );
  assertEquals(bareVersion("9.0.0\n"), "9.0.0");
  assertEquals(bareVersion("usage: virsh\n"), undefined);
  assertEquals(vboxVersion("7.0.18r162988\n"), "7.0.18r162988");
  assertEquals(
    vboxVersion(
      "WARNING: The vboxdrv kernel module is not loaded. Either there is no module\n         available for the current kernel (6.8.0-51-generic) or it failed to\n\n         sudo /sbin/vboxconfig\n\n7.0.16_Ubuntur162802\n",
    ),
    "7.0.16_Ubuntur162802",
  );
});

Deno.test("minorOf and kernelVersion", () => {
  assertEquals(minorOf("v1.35.0"), [1, 35]);
  assertEquals(minorOf("1.34"), [1, 34]);
  assertEquals(minorOf("x"), undefined);
  assertEquals(kernelVersion("6.18.44-fc-v782"), [6, 18]);
  assertEquals(kernelVersion("6.8.0-51-generic"), [6, 8]);
});
