/**
 * The libvirt domain XML dtk defines for cloud-image templates and their clones.
 *
 * @module
 */

export interface DomainXmlOptions {
  name: string;
  /** `kvm` (hardware) or `qemu` (TCG). */
  type: "kvm" | "qemu";
  memMiB: number;
  cpus: number;
  disk: string;
  /** The `cidata` seed, attached read-only as a CD-ROM. */
  seedIso?: string;
  /** Direct kernel boot, for images without a boot loader. */
  kernel?: string;
  initrd?: string;
  cmdline?: string;
  network: { mode: "none" } | { mode: "nat"; network: string; mac: string } | {
    mode: "user";
    sshPort: number;
    mac: string;
  };
}

export function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&apos;");
}

export function domainXml(o: DomainXmlOptions): string {
  const e = escapeXml;
  const boot = o.kernel
    ? [
      `    <kernel>${e(o.kernel)}</kernel>`,
      ...(o.initrd ? [`    <initrd>${e(o.initrd)}</initrd>`] : []),
      ...(o.cmdline ? [`    <cmdline>${e(o.cmdline)}</cmdline>`] : []),
    ]
    : ["    <boot dev='hd'/>"];
  const seed = o.seedIso
    ? [
      "    <disk type='file' device='cdrom'>",
      "      <driver name='qemu' type='raw'/>",
      `      <source file='${e(o.seedIso)}'/>`,
      "      <target dev='hdc' bus='ide'/>",
      "      <readonly/>",
      "    </disk>",
    ]
    : [];
  const nic = o.network.mode === "nat"
    ? [
      "    <interface type='network'>",
      `      <source network='${e(o.network.network)}'/>`,
      `      <mac address='${e(o.network.mac)}'/>`,
      "      <model type='virtio'/>",
      "    </interface>",
    ]
    : [];
  // User-mode networking has no libvirt element that forwards a port; pass it to qemu directly.
  // The NIC's PCI slot is pinned so that it cannot collide with a slot libvirt assigns.
  const qemuArgs = o.network.mode === "user"
    ? [
      "  <qemu:commandline>",
      "    <qemu:arg value='-netdev'/>",
      `    <qemu:arg value='user,id=dtknet0,hostfwd=tcp:127.0.0.1:${o.network.sshPort}-:22'/>`,
      "    <qemu:arg value='-device'/>",
      `    <qemu:arg value='virtio-net-pci,netdev=dtknet0,mac=${e(o.network.mac)},addr=0x10'/>`,
      "  </qemu:commandline>",
    ]
    : [];
  return [
    `<domain type='${o.type}' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>`,
    `  <name>${e(o.name)}</name>`,
    `  <memory unit='MiB'>${o.memMiB}</memory>`,
    `  <currentMemory unit='MiB'>${o.memMiB}</currentMemory>`,
    `  <vcpu placement='static'>${o.cpus}</vcpu>`,
    "  <os>",
    "    <type arch='x86_64' machine='pc'>hvm</type>",
    ...boot,
    "  </os>",
    "  <features><acpi/><apic/></features>",
    ...(o.type === "kvm" ? ["  <cpu mode='host-passthrough'/>"] : []),
    "  <on_poweroff>destroy</on_poweroff>",
    "  <on_reboot>restart</on_reboot>",
    "  <on_crash>destroy</on_crash>",
    "  <devices>",
    "    <disk type='file' device='disk'>",
    "      <driver name='qemu' type='qcow2' cache='unsafe'/>",
    `      <source file='${e(o.disk)}'/>`,
    "      <target dev='vda' bus='virtio'/>",
    "    </disk>",
    ...seed,
    ...nic,
    "    <serial type='pty'><target port='0'/></serial>",
    "    <console type='pty'><target type='serial' port='0'/></console>",
    "    <memballoon model='none'/>",
    "  </devices>",
    ...qemuArgs,
    "</domain>",
    "",
  ].join("\n");
}

/** The text of the first `<tag>` element, XML entities decoded. */
export function xmlText(xml: string, tag: string): string | undefined {
  const m = xml.match(new RegExp(`<${tag}>([^<]*)</${tag}>`));
  return m?.[1] === undefined ? undefined : unescapeXml(m[1]);
}

export function unescapeXml(text: string): string {
  return text.replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&quot;", '"')
    .replaceAll("&apos;", "'").replaceAll("&amp;", "&");
}

/** A random locally administered MAC in QEMU's 52:54:00 range. */
export function randomMac(): string {
  const b = crypto.getRandomValues(new Uint8Array(3));
  return `52:54:00:${[...b].map((x) => x.toString(16).padStart(2, "0")).join(":")}`;
}
