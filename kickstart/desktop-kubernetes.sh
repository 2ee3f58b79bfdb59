#!/bin/bash
# dtk first-boot script of VirtualBox guests. Step state lives in /root/desktop-kubernetes.log so
# that each reboot continues where the last one stopped; every step is safe to repeat.
set -u
log=/root/desktop-kubernetes.log
touch "$log"
done_step() { grep -qx "$1" "$log"; }

# A clone's CFGENP0S8 volume: static IP for enp0s8 and, when dtk made them, the SSH host keys.
dev=$(blkid -t LABEL=CFGENP0S8 -o device 2>/dev/null | head -n 1)
if [ -n "$dev" ]; then
  mnt=$(mktemp -d)
  if mount -o ro "$dev" "$mnt"; then
    if [ -f "$mnt/ifcfg-enp0s8" ]; then
      install -m 0644 "$mnt/ifcfg-enp0s8" /etc/sysconfig/network-scripts/ifcfg-enp0s8
      nmcli connection reload || true
      nmcli connection up enp0s8 || nmcli connection up "System enp0s8" || true
    fi
    if [ -f "$mnt/ssh_host_ed25519_key" ]; then
      install -m 0600 "$mnt/ssh_host_ed25519_key" /etc/ssh/ssh_host_ed25519_key
      install -m 0644 "$mnt/ssh_host_ed25519_key.pub" /etc/ssh/ssh_host_ed25519_key.pub
      systemctl try-restart sshd || true
    fi
    umount "$mnt"
  fi
  rmdir "$mnt"
fi

if ! done_step guest-additions-prepared; then
  dnf install -y epel-release && dnf update -y --refresh &&
    dnf install -y gcc make perl kernel-devel kernel-headers bzip2 dkms elfutils-libelf-devel &&
    echo guest-additions-prepared >> "$log" && reboot -f
  exit 0
fi
if ! done_step guest-additions-installed; then
  mkdir -p /mnt/cdrom
  if mount -o ro /dev/cdrom /mnt/cdrom && [ -x /mnt/cdrom/VBoxLinuxAdditions.run ]; then
    /mnt/cdrom/VBoxLinuxAdditions.run
    umount /mnt/cdrom
    echo guest-additions-installed >> "$log"
    shutdown -h now
  fi
fi
exit 0
