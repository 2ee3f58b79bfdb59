import assert from "node:assert/strict";
import { canonicalIp, firstHostIp, parseIp } from "./_ip.ts";

Deno.test("firstHostIp gives the kubernetes Service IP of IPv4 and IPv6 ranges", () => {
  assert.equal(firstHostIp("10.32.0.0/24"), "10.32.0.1");
  assert.equal(firstHostIp("10.96.0.0/12"), "10.96.0.1");
  // A host address inside the range still yields the range's first host.
  assert.equal(firstHostIp("10.32.0.77/24"), "10.32.0.1");
  assert.equal(firstHostIp("172.16.255.0/23"), "172.16.254.1");
  assert.equal(firstHostIp("fd00:10:96::/108"), "fd00:10:96::1");
  assert.equal(firstHostIp("10.0.0.0/32"), undefined);
  assert.equal(firstHostIp("10.0.0/24"), undefined);
  assert.equal(firstHostIp("10.0.0.0"), undefined);
  assert.equal(firstHostIp("10.0.0.0/33"), undefined);
});

Deno.test("canonicalIp normalises IPv6 and refuses malformed addresses", () => {
  assert.equal(canonicalIp("FD00:0:0:0:0:0:0:1"), "fd00::1");
  assert.equal(canonicalIp("2001:db8:0:0:1:0:0:1"), "2001:db8::1:0:0:1");
  assert.equal(canonicalIp("::ffff:10.0.0.1"), "::ffff:a00:1");
  assert.equal(canonicalIp("::"), "::");
  assert.equal(canonicalIp("192.168.1.1"), "192.168.1.1");
  for (const bad of ["256.1.1.1", "01.2.3.4", "1.2.3", "1::2::3", "1:2:3:4:5:6:7:8:9", "vm1", ""]) {
    assert.equal(parseIp(bad), undefined, bad);
  }
});
