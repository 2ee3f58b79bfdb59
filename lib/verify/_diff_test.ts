import assert from "node:assert/strict";
import { shortDiff } from "./_diff.ts";
import { reportedVersion, versionMatches } from "./_versions.ts";

Deno.test("shortDiff: equal texts give nothing", () => {
  assert.equal(shortDiff("a\nb\n", "a\nb\n"), "");
});

Deno.test("shortDiff: a changed flag in a unit shows context, - and + lines", () => {
  const expected =
    "[Service]\nExecStart=/usr/local/bin/kubelet \\\n  --config=/a \\\n  --v=2\nRestart=on-failure\n";
  const actual =
    "[Service]\nExecStart=/usr/local/bin/kubelet \\\n  --config=/a \\\n  --v=9\nRestart=on-failure\n";
  assert.equal(
    shortDiff(expected, actual),
    [
      "--- expected",
      "+++ actual",
      "@@ -2,4 +2,4 @@",
      " ExecStart=/usr/local/bin/kubelet \\",
      "   --config=/a \\",
      "-  --v=2",
      "+  --v=9",
      " Restart=on-failure",
    ].join("\n"),
  );
});

Deno.test("shortDiff: an added line and a long change are cut", () => {
  assert.equal(
    shortDiff("a\nb\n", "a\nx\nb\n", { context: 0 }),
    "--- expected\n+++ actual\n@@ -2,0 +2,1 @@\n+x",
  );
  const many = Array.from({ length: 30 }, (_, i) => `l${i}`).join("\n");
  const diff = shortDiff("", many, { maxLines: 3 });
  assert.match(diff, /\+l0\n\+l1\n\+l2\n… 27 more changed lines$/);
});

Deno.test("shortDiff: a missing final newline is named", () => {
  assert.match(shortDiff("a\n", "a"), /no newline at end of file/);
});

Deno.test("reportedVersion reads the --version output of each component", () => {
  assert.equal(reportedVersion("Kubernetes v1.20.2\n"), "1.20.2");
  assert.equal(
    reportedVersion("etcd Version: 3.4.23\nGit SHA: Not provided\nGo Version: go1.19.8\n"),
    "3.4.23",
  );
  assert.equal(
    reportedVersion(
      "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3\n",
    ),
    "1.6.20~ds1",
  );
  assert.equal(
    reportedVersion("containerd github.com/containerd/containerd/v2 v2.1.1 cb1076646aa3\n"),
    "2.1.1",
  );
  assert.equal(
    reportedVersion("runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1\nspec: 1.0.2-dev\n"),
    "1.1.5+ds1",
  );
  assert.equal(reportedVersion("crictl version v1.33.0\n"), "1.33.0");
  assert.equal(reportedVersion("sh: 1: kubelet: not found"), undefined);
});

Deno.test("versionMatches accepts distro suffixes, not other releases", () => {
  assert.ok(versionMatches("v1.20.2", "1.20.2"));
  assert.ok(versionMatches("1.6.20", "1.6.20~ds1"));
  assert.ok(versionMatches("v1.1.5", "1.1.5+ds1"));
  assert.ok(!versionMatches("v1.20.2", "1.20.21"));
  assert.ok(!versionMatches("v1.20.2", "1.20.1"));
  assert.ok(!versionMatches("v3.5.21", "3.4.23"));
});
