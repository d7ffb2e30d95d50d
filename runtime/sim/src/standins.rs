//! Stand-in programs: `mkfs`, `mkswap` and `efibootmgr` for the deploy
//! path; `mdadm`, `multipath` and `multipathd` for stacked storage. Each appends its argument vector to
//! `<root>/.ironic-sim/calls/<program>` (one call per line, arguments
//! separated by a TAB), so tests assert exactly what the agent ran. None of
//! them touches a disk: the arguments name the machine's devices
//! (`/dev/sda1`), which do not exist on the host running the simulation.
//!
//! `efibootmgr` also keeps the machine's boot entries in
//! `<root>/.ironic-sim/efi-boot-entries` (`NNNN<TAB>label<TAB>path`) and
//! prints them for `-v` like the real tool, so the agent's duplicate
//! handling (delete same-labelled entries, then create) can be observed.

//!
//! `mdadm` answers `--detail`, `--examine` and `--examine --scan` for the
//! arrays the description assembles (from `.ironic-sim/md/<name>/`), and
//! `--stop` / `--zero-superblock` change the machine as the kernel and udev
//! would: a stopped array leaves `/sys/block`, a zeroed member loses its
//! `linux_raid_member` signature in udev's record. `--create` and `--add`
//! are recorded only: building arrays needs the kernel's md driver, which
//! the VM tests use (docs/testing-storage.md). `multipath` answers `-ll`
//! and `-c` for the described maps; `multipathd` is recorded.

/// Programs written to `.ironic-sim/bin` on every simulated machine.
pub const PROGRAMS: &[&str] = &[
    "mkfs",
    "mkswap",
    "efibootmgr",
    "mdadm",
    "multipath",
    "multipathd",
];

/// Shell prelude: locate the machine from the script's own path and record
/// the call.
const RECORD: &str = r#"#!/bin/sh
# The agent runs stand-ins with PATH = this directory only; the script's own
# helpers (dirname, cut, ...) come from the host.
PATH=/usr/bin:/bin; export PATH
sim="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$sim/calls"
name="$(basename "$0")"
line=""
sep=""
for a in "$@"; do line="$line$sep$a"; sep="$(printf '\t')"; done
printf '%s\n' "$line" >> "$sim/calls/$name"
"#;

/// The script for `program` (one of [`PROGRAMS`]).
pub fn script(program: &str) -> String {
    match program {
        "efibootmgr" => format!("{RECORD}{EFIBOOTMGR}"),
        "mdadm" => format!("{RECORD}{MDADM}"),
        "multipath" => format!("{RECORD}{MULTIPATH}"),
        // mkfs/mkswap: recorded, nothing formatted.
        _ => format!("{RECORD}exit 0\n"),
    }
}

const EFIBOOTMGR: &str = r#"entries="$sim/efi-boot-entries"
touch "$entries"
tab="$(printf '\t')"
list() {
    echo "BootCurrent: 0000"
    order="0000"
    while IFS="$tab" read -r n l p; do order="$order,$n"; done < "$entries"
    echo "BootOrder: $order"
    echo "Boot0000* ironic-sim PXE${tab}PciRoot(0x0)/Pci(0x3,0x0)/MAC(b49691aabb01,1)/IPv4(0.0.0.0)"
    while IFS="$tab" read -r n l p; do
        echo "Boot$n* $l${tab}HD(1,GPT,00000000-0000-0000-0000-000000000000,0x800,0x100000)/File($p)"
    done < "$entries"
}
create=0; delete=""; label=""; loader=""
while [ $# -gt 0 ]; do
    case "$1" in
        --version|-V) echo "version 18"; exit 0 ;;
        -c|--create) create=1 ;;
        -B|--delete-bootnum) delete=1 ;;
        -b|--bootnum) shift; num="$1" ;;
        -L|--label) shift; label="$1" ;;
        -l|--loader) shift; loader="$1" ;;
        -d|--disk|-p|--part) shift ;;
    esac
    shift
done
if [ -n "$delete" ]; then
    grep -v "^$num$tab" "$entries" > "$entries.new" || true
    mv "$entries.new" "$entries"
elif [ "$create" = 1 ]; then
    last=$(cut -f1 "$entries" | sort | tail -n 1)
    next=$(printf '%04X' $(( 0x${last:-0000} + 1 )))
    printf '%s\t%s\t%s\n' "$next" "$label" "$loader" >> "$entries"
fi
list
"#;

const MDADM: &str = r#"root="$(cd "$sim/.." && pwd)"
md="$sim/md"
host="$(cat "$root/proc/sys/kernel/hostname")"
base() { echo "${1#/dev/}"; }
# The array (not zeroed) whose member is $1, if any.
array_of() {
    for d in "$md"/*/; do
        [ -d "$d" ] || continue
        while read -r slot major minor m; do
            if [ "$m" = "$1" ] && [ ! -e "$d/zeroed-$m" ]; then basename "$d"; return 0; fi
        done < "$d/members"
    done
    return 1
}
detail() {
    a="$1"; d="$md/$a"
    n=$(wc -l < "$d/members")
    kib=$(cat "$d/size_kib")
    echo "/dev/$a:"
    echo "           Version : $(cat "$d/metadata")"
    echo "        Raid Level : $(cat "$d/level")"
    echo "        Array Size : $kib"
    echo "      Raid Devices : $n"
    echo "     Total Devices : $n"
    echo "             State : clean"
    name="$(cat "$d/name")"
    [ -n "$name" ] && echo "              Name : $name  (local to host $host)"
    echo "              UUID : $(cat "$d/uuid")"
    echo "            Events : 17"
    echo
    echo "    Number   Major   Minor   RaidDevice State"
    while read -r slot major minor m; do
        printf '       %s       %s        %s        %s      active sync   /dev/%s\n' "$slot" "$major" "$minor" "$slot" "$m"
    done < "$d/members"
}
case "$1" in
    --detail|-D)
        a=$(base "$2")
        if [ -d "$md/$a" ] && [ ! -e "$md/$a/stopped" ]; then detail "$a"; exit 0; fi
        echo "mdadm: cannot open $2: No such file or directory" >&2; exit 1 ;;
    --examine|-E)
        if [ "$2" = "--scan" ]; then
            for d in "$md"/*/; do
                [ -d "$d" ] || continue
                a=$(basename "$d"); intact=0
                while read -r slot major minor m; do [ -e "$d/zeroed-$m" ] || intact=1; done < "$d/members"
                [ "$intact" = 1 ] || continue
                echo "ARRAY /dev/md/$a  metadata=$(cat "$d/metadata") UUID=$(cat "$d/uuid") name=$(cat "$d/name")"
            done
            exit 0
        fi
        m=$(base "$2")
        if a=$(array_of "$m"); then
            d="$md/$a"
            echo "$2:"
            echo "          Magic : a92b4efc"
            echo "        Version : $(cat "$d/metadata")"
            echo "     Array UUID : $(cat "$d/uuid")"
            echo "           Name : $(cat "$d/name")"
            echo "     Raid Level : $(cat "$d/level")"
            exit 0
        fi
        echo "mdadm: No md superblock detected on $2." >&2; exit 1 ;;
    --stop|-S)
        a=$(base "$2")
        if [ ! -d "$md/$a" ] || [ -e "$md/$a/stopped" ]; then
            echo "mdadm: error opening $2: No such file or directory" >&2; exit 1
        fi
        while read -r obj; do [ -n "$obj" ] && rm -rf "${root:?}/$obj"; done < "$md/$a/kernel-objects"
        touch "$md/$a/stopped"
        echo "mdadm: stopped $2" >&2; exit 0 ;;
    --zero-superblock)
        m=$(base "$2")
        if ! a=$(array_of "$m"); then
            echo "mdadm: Unrecognised md component device - $2" >&2; exit 1
        fi
        if [ ! -e "$md/$a/stopped" ]; then
            echo "mdadm: Couldn't open $2 for write - not zeroing" >&2; exit 1
        fi
        touch "$md/$a/zeroed-$m"
        record=$(grep "^$m " "$md/$a/member-records" | cut -d' ' -f2)
        if [ -n "$record" ] && [ -f "$root/$record" ]; then
            grep -v '^E:ID_FS_' "$root/$record" > "$root/$record.new" || true
            mv "$root/$record.new" "$root/$record"
        fi
        exit 0 ;;
    --assemble|-A)
        echo "mdadm: No arrays found in config file or automatically" >&2; exit 1 ;;
    *)
        # --create, --add, ...: recorded only (see the module documentation).
        exit 0 ;;
esac
"#;

const MULTIPATH: &str = r#"mp="$sim/multipath"
show() {
    d="$mp/$1"
    echo "$(cat "$d/alias") ($(cat "$d/wwid")) $1 SIM,LUN"
    echo "size=1G features='0' hwhandler='0' wp=rw"
    echo "\`-+- policy='service-time 0' prio=1 status=active"
    while read -r p; do echo "  |- 0:0:0:0 $p 8:0 active ready running"; done < "$d/paths"
}
map_of() {
    for d in "$mp"/*/; do
        [ -d "$d" ] || continue
        if grep -qx "$1" "$d/paths" || [ "$(basename "$d")" = "$1" ] || [ "$(cat "$d/alias")" = "$1" ]; then
            basename "$d"; return 0
        fi
    done
    return 1
}
case "$1" in
    -c)
        # A path of a map: "is a valid multipath device path" (exit 0).
        dev="${2#/dev/}"
        for d in "$mp"/*/; do
            [ -d "$d" ] || continue
            if grep -qx "$dev" "$d/paths"; then echo "$2 is a valid multipath device path"; exit 0; fi
        done
        echo "$2 is not a valid multipath device path"; exit 1 ;;
    -ll|-l)
        if [ -n "$2" ]; then
            m=$(map_of "${2#/dev/}") || exit 0
            show "$m"; exit 0
        fi
        for d in "$mp"/*/; do [ -d "$d" ] && show "$(basename "$d")"; done
        exit 0 ;;
    *) exit 0 ;;
esac
"#;
