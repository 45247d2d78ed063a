#!/usr/bin/env python3
"""Prints the functions of BINARY that ran in the given callgrind outputs, one symbol per line,
sorted by name (the set is what counts: laid out together they fill fewer pages; sorted, a rerun
changes only the lines of functions that came or went): the link order file of the release
build (Benchmarks/link-order.sh).

    link_order.py BINARY callgrind.out...
"""
import os
import re
import sys


def main() -> None:
    binary, outputs = os.path.realpath(sys.argv[1]), sys.argv[2:]
    seen: dict[str, None] = {}
    # callgrind compresses names: "fn=(7) name" defines id 7, later "fn=(7)" reuses it; "ob=" says
    # which object the following functions belong to, "cfn="/"cob=" name callees (not run here).
    line_re = re.compile(r"^(c?)(ob|fn)=\((\d+)\)(?: (.*))?$")
    for path in outputs:
        objects: dict[str, str] = {}
        functions: dict[str, str] = {}
        current_object = None
        with open(path, errors="replace") as f:
            for line in f:
                m = line_re.match(line.rstrip("\n"))
                if not m:
                    continue
                callee, kind, ident, name = m.groups()
                table = objects if kind == "ob" else functions
                if name is not None:
                    table[ident] = name
                if callee:
                    continue
                if kind == "ob":
                    current_object = objects.get(ident)
                    continue
                symbol = functions.get(ident, "")
                if current_object is None or os.path.realpath(current_object) != binary:
                    continue
                symbol = re.sub(r"'\d+$", "", symbol)  # callgrind's recursion-depth suffix
                if symbol and not symbol.startswith("0x") and " " not in symbol:
                    seen.setdefault(symbol, None)
    if not seen:
        sys.exit(f"link_order.py: no function of {binary} in the callgrind outputs")
    sys.stdout.write("".join(s + "\n" for s in sorted(seen)))


if __name__ == "__main__":
    main()
