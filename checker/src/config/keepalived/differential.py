"""Differential test of vipcheck's keepalived.conf reader against keepalived.

    python3 differential.py SEED COUNT [VIPCHECK] [DIR]

Writes COUNT random keepalived.conf files (lines drawn from POOL: keywords,
braces, parameters, sequences, conditionals, comments) into DIR, has
`keepalived -t -f` (keepalived 2.2.7, run as root) and `VIPCHECK keepalived
snippet --keepalived` read each, and compares what keepalived reports while
parsing (unknown keywords, unexpected or missing braces, quotes) with
vipcheck's warnings, and whether each refuses the file.
Prints the files that differ (kept in DIR) and their count. keepalived
crashes (exit -11) or loops (a self-expanding parameter) on a few: those show
as mismatches or TIMEOUT.
"""
import random, subprocess, re, sys, os
VIPCHECK = sys.argv[3] if len(sys.argv) > 3 else "target/debug/vipcheck"
DIR = sys.argv[4] if len(sys.argv) > 4 else "/tmp/vipcheck-differential"
os.makedirs(DIR, exist_ok=True)
POOL = [
 "virtual_server 10.0.0.100 80 {", "virtual_server 10.0.0.101 80", "{", "}", "}", "}",
 "protocol TCP", "lb_kind DR", "lb_algo rr", "real_server 10.0.0.42 80 {", "real_server 10.0.0.43 80",
 "TCP_CHECK {", "HTTP_GET {", "url {", "path /", "digest abc", "connect_timeout 3", "conect_timeout 3",
 "real_sever 10.0.0.44 80 {", "foo_bar", "global_defs {", "router_id A", "notification_email {", "root@x",
 "virtual_server_group G {", "10.0.0.1 80", "vrrp_script s {", "script /bin/true", "interval 2",
 "$X=1", "$Y=real_server 10.0.0.45 80", "$Y", "$X", "${X}", "@vm lb_kind NAT", "@^vm lb_kind TUN",
 "~SEQ(n, 1, 2) real_server 10.0.0.$n 80", "~SEQ(n, 1, 2) foo$n", "# comment {", "! another }",
 "weight 1 # } not a brace", "\"quoted {\"", "TCP_CHECK { connect_port 80 }", "url { path /x }",
 "$M=TCP_CHECK { \\", "connect_timeout 2 \\", "}", "$M", "include_check", "static_ipaddress {", "10.9.9.9/32 dev lo",
 "MISC_CHECK {", "misc_path \"/bin/true\"", "x { y { z } }", "} }", "{ {",
 "${X}abc", "$X,", "$_HASH foo", "$_BANG bar", "x\\#y", "\"a#b\" c", "$Y=foo$X", "$Z=\\", "line \\", "@vm foo1", "@^vm bar1", "@ foo2",
 "~LST(v, a, b) k$v", "~SEQ(v,3) q$v", "~SEQx(v, 9, 11) h$v", "$N=~SEQ(i,1,2) z$i", "$N", "$P=p1 \\", "p2 \\", "p3", "$P",
 "${_INSTANCE}x", "w$_INSTANCE", "$Q=$X$X", "$Q", "a $X b", "~LST({a,b},{1,2},{3,4}) l$a$b", "~SEQ(v, 5, -2, 1) n$v", "@vm $X=9", "$X=2",
 "$E=", "$E", "e$E", "$T=x # c", "$T", "~bad", "  ~SEQ(v,1,2) i$v", "$LONG=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "${LONG}${LONG}", "$U=${X}${X}", "$U",
]
random.seed(int(sys.argv[1]))
bad = 0
for n in range(int(sys.argv[2])):
    lines = [random.choice(POOL) for _ in range(random.randint(3, 25))]
    text = "\n".join(lines) + "\n"
    path = f"{DIR}/c{n}.conf"
    open(path, "w").write(text)
    def norm(out, pat):
        res = set()
        for l in out.splitlines():
            m = re.match(pat, l)
            if m and re.search(r"Unknown keyword|Unexpected '\{'|Missing '\{'|Extra '\}'|missing '\}'|Unmatched|Unterminated", m.group(2)):
                res.add((m.group(1), m.group(2)))
        return res
    try:
        k = subprocess.run(["setsid", "keepalived", "-t", "-f", path], capture_output=True, text=True, errors="replace", timeout=10)
    except subprocess.TimeoutExpired:
        print("TIMEOUT", path); continue
    v = subprocess.run([VIPCHECK, "keepalived", "snippet", "--keepalived", path, "--track-dir", DIR + "/track"], capture_output=True, text=True, errors="replace")
    ks = norm(k.stderr, r"^\((?:[^:]*: )?Line (\d+)\) (.*)$")
    # messages without line ("There are N missing")
    for l in k.stderr.splitlines():
        if l.startswith("There are"): ks.add(("?", l))
    vs = set()
    for l in v.stderr.splitlines():
        m = re.match(r"^vipcheck: [^:]*:(\d+): warning: (.*)$", l)
        if m:
            msg = m.group(2)
            if msg.startswith("There are"): vs.add(("?", msg)); continue
            if re.search(r"Unknown keyword|Unexpected '\{'|Missing '\{'|Extra '\}'|Unmatched|Unterminated", msg):
                vs.add((m.group(1), msg))
    kerr = k.returncode in (4, 6); verr = v.returncode != 0
    if ks != vs or kerr != verr:
        bad += 1
        if bad <= 4:
            print("=== ", path, "rc", k.returncode, v.returncode)
            print(text)
            print("keepalived only:", sorted(ks - vs))
            print("vipcheck only:", sorted(vs - ks))
            print(v.stderr[-300:] if verr else "")
    else:
        os.remove(path)
print("mismatches", bad)
