//! Stand-in programs for the deploy path: `mkfs`, `mkswap` and
//! `efibootmgr`. Each appends its argument vector to
//! `<root>/.ironic-sim/calls/<program>` (one call per line, arguments
//! separated by a TAB), so tests assert exactly what the agent ran. None of
//! them touches a disk: the arguments name the machine's devices
//! (`/dev/sda1`), which do not exist on the host running the simulation.
//!
//! `efibootmgr` also keeps the machine's boot entries in
//! `<root>/.ironic-sim/efi-boot-entries` (`NNNN<TAB>label<TAB>path`) and
//! prints them for `-v` like the real tool, so the agent's duplicate
//! handling (delete same-labelled entries, then create) can be observed.

/// Programs written to `.ironic-sim/bin` on every simulated machine.
pub const PROGRAMS: &[&str] = &["mkfs", "mkswap", "efibootmgr"];

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
