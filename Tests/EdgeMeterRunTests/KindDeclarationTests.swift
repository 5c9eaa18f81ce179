import XCTest
import EdgeMeterCore
import EdgeMeterRun
import EdgeMeterTestSupport

/// Each kind is declared once: `edgemeter KIND` flags and the equivalent `kind: KIND` suite scenario
/// give the same configuration, and a bad value gets the same message from both paths (only the
/// prefix and the parameter's name differ: `suite.yaml:6: scenario "s": `count` ...` vs
/// `Error: -c/--count ...`).
///
/// Both configurations come from the built binary: `edgemeter KIND ... --print-config` and
/// `edgemeter run suite.yaml --print-config` print what the flags and the suite resolve to (the
/// real argument parsing, no copy of it here), one line per scenario.
final class KindDeclarationTests: BinaryTestCase {
    /// Flags and the scenario bodies (YAML, one per scenario the flags make) that mean the same.
    struct Same {
        var argv: [String]
        var yaml: [String]
    }

    /// A bad value: the suite's message (after `scenario "s": `), and how the CLI names each
    /// parameter the message names (`` `count` `` → `-c/--count`). A nil message is only compared
    /// across the two paths (its text comes from another module, e.g. the expression parser).
    struct Bad {
        var argv: [String]
        var yaml: String
        var message: String?
        var labels: [String: String]
    }

    struct KindCases {
        var same: [Same]
        var bad: [Bad]
    }

    /// One entry per kind in `ScenarioKinds.all`; a kind without one fails `testEveryKindHasCases`.
    let table: [String: KindCases] = [
        "ping": KindCases(same: [
            Same(argv: ["ping", "-c", "3", "-i", "200ms", "-W", "2s", "-s", "100", "--socket", "raw", "--spin", "on", "-4", "127.0.0.1", "::1"],
                 yaml: ["targets: [127.0.0.1, \"::1\"]\ncount: 3\ninterval: 200ms\ntimeout: 2s\npayload: 100\nsocket: raw\nspin: on\nfamily: ipv4"]),
            // The interval's defaults differ on purpose (1 s as iputils ping; 100 ms in a suite).
            Same(argv: ["ping", "-w", "2s", "127.0.0.1"], yaml: ["targets: [127.0.0.1]\ndeadline: 2s\ninterval: 1s"]),
            Same(argv: ["ping", "-c", "3", "--rounds", "4", "--every", "60s", "127.0.0.1"],
                 yaml: ["targets: [127.0.0.1]\ncount: 3\ninterval: 1s\nrounds: 4\nevery: 60s"]),
        ], bad: [
            Bad(argv: ["ping", "-c", "1", "--rounds", "0", "127.0.0.1"], yaml: "targets: [127.0.0.1]\ncount: 1\nrounds: 0",
                message: "`rounds` must be a positive integer, got \"0\"", labels: ["`rounds`": "--rounds"]),
            Bad(argv: ["ping", "-c", "1", "--rounds", "20000", "127.0.0.1"], yaml: "targets: [127.0.0.1]\ncount: 1\nrounds: 20000",
                message: "`rounds` must be 1-10000, got 20000", labels: ["`rounds`": "--rounds"]),
            Bad(argv: ["ping", "-c", "1", "--rounds", "3", "--every", "10ms", "127.0.0.1"], yaml: "targets: [127.0.0.1]\ncount: 1\nrounds: 3\nevery: 10ms",
                message: "`every` must be at least 100ms, got 10ms", labels: ["`every`": "--every"]),
            Bad(argv: ["ping", "-c", "1", "--every", "30s", "127.0.0.1"], yaml: "targets: [127.0.0.1]\ncount: 1\nevery: 30s",
                message: "`every` needs `rounds`: give the number of rounds too, e.g. `rounds: 10`",
                labels: ["`every`": "--every", "`rounds`": "--rounds", "`rounds: 10`": "--rounds 10"]),
            Bad(argv: ["ping", "-c", "1", "--rounds", "10000", "--every", "86400s", "127.0.0.1"],
                yaml: "targets: [127.0.0.1]\ncount: 1\nrounds: 10000\nevery: 86400s",
                message: "`rounds` × `every` must be at most a week (604800s), got 10000 × 86400s; use fewer rounds or a shorter interval",
                labels: ["`rounds`": "--rounds", "`every`": "--every"]),
            Bad(argv: ["ping", "-c", "0", "127.0.0.1"], yaml: "targets: [127.0.0.1]\ncount: 0",
                message: "`count` must be a positive integer, got \"0\"", labels: ["`count`": "-c/--count"]),
            Bad(argv: ["ping", "-c", "1", "-i", "10us", "127.0.0.1"], yaml: "targets: [127.0.0.1]\ncount: 1\ninterval: 10us",
                message: "`interval` must be at least 1ms", labels: ["`interval`": "-i/--interval"]),
            Bad(argv: ["ping", "-c", "1", "-s", "70000", "127.0.0.1"], yaml: "targets: [127.0.0.1]\ncount: 1\npayload: 70000",
                message: "`payload` must be at most 65000 bytes, got 70000", labels: ["`payload`": "-s"]),
            Bad(argv: ["ping", "-c", "1", "--spin", "fast", "127.0.0.1"], yaml: "targets: [127.0.0.1]\ncount: 1\nspin: fast",
                message: "`spin` must be one of off, on, got \"fast\"", labels: ["`spin`": "--spin"]),
            Bad(argv: ["ping", "-c", "1", "-i", "-1", "127.0.0.1"], yaml: "targets: [127.0.0.1]\ncount: 1\ninterval: -1",
                message: "`interval` must be a positive duration, got \"-1\": a negative time has no meaning here; give e.g. 0.2, 200ms or 1s",
                labels: ["`interval`": "-i/--interval"]),
            Bad(argv: ["ping", "-c", "1", "-W", "0", "127.0.0.1"], yaml: "targets: [127.0.0.1]\ncount: 1\ntimeout: 0",
                message: "`timeout` must be more than 0", labels: ["`timeout`": "-W/--timeout"]),
        ]),
        "tcping": KindCases(same: [
            Same(argv: ["tcping", "-c", "2", "-i", "50ms", "--payload", "hi", "--expect", "hi", "-6", "[::1]:80"],
                 yaml: ["targets: [\"[::1]:80\"]\ncount: 2\ninterval: 50ms\npayload: hi\nexpect: hi\nfamily: ipv6"]),
            Same(argv: ["tcping", "-w", "1s", "--listener", "127.0.0.1"], yaml: ["targets: [127.0.0.1]\ndeadline: 1s\ninterval: 1s\nlistener: true"]),
            Same(argv: ["tcping", "-c", "2", "--rounds", "3", "--listener", "127.0.0.1"],
                 yaml: ["targets: [127.0.0.1]\ncount: 2\ninterval: 1s\nlistener: true\nrounds: 3\nevery: 30s"]),
        ], bad: [
            Bad(argv: ["tcping", "-c", "1", "127.0.0.1"], yaml: "targets: [127.0.0.1]\ncount: 1",
                message: "\"127.0.0.1\" is not HOST:PORT; for example 127.0.0.1:80 or [::1]:80; or set `listener: true` to probe a listener the run starts on that host",
                labels: ["`listener: true`": "--listener"]),
            Bad(argv: ["tcping", "-c", "1", "--expect", "x", "127.0.0.1:1"], yaml: "targets: [\"127.0.0.1:1\"]\ncount: 1\nexpect: x",
                message: "`expect` needs `payload`: give the bytes to send first", labels: ["`expect`": "--expect", "`payload`": "--payload"]),
            Bad(argv: ["tcping", "-c", "-3", "127.0.0.1:1"], yaml: "targets: [\"127.0.0.1:1\"]\ncount: -3",
                message: "`count` must be a positive integer, got \"-3\"", labels: ["`count`": "-c/--count"]),
        ]),
        "http": KindCases(same: [
            Same(argv: ["http", "-c", "3", "-i", "10ms", "-W", "2s", "-X", "put", "-H", "A: b", "-H", "C:d", "--body", "x",
                        "--expect-status", "200", "--expect-status", "204", "--expect-body", "ok", "http://127.0.0.1:8080/p"],
                 yaml: ["url: http://127.0.0.1:8080/p\ncount: 3\ninterval: 10ms\ntimeout: 2s\nmethod: put\nheaders: [\"A: b\", \"C:d\"]\nbody: x\nexpect_status: [200, 204]\nexpect_body: ok"]),
            Same(argv: ["http", "http://127.0.0.1:8080/"], yaml: ["url: http://127.0.0.1:8080/\ncount: 5\ninterval: 1s"]),
            Same(argv: ["http", "--rounds", "2", "--every", "500ms", "http://127.0.0.1:8080/"],
                 yaml: ["url: http://127.0.0.1:8080/\ncount: 5\ninterval: 1s\nrounds: 2\nevery: 500ms"]),
        ], bad: [
            Bad(argv: ["http", "-c", "0", "http://127.0.0.1:8080/"], yaml: "url: http://127.0.0.1:8080/\ncount: 0",
                message: "`count` must be a positive integer, got \"0\"", labels: ["`count`": "-c/--count"]),
            Bad(argv: ["http", "-H", "nocolon", "http://127.0.0.1:8080/"], yaml: "url: http://127.0.0.1:8080/\ncount: 1\nheaders: [nocolon]",
                message: "`headers` \"nocolon\" is not `Name: value`; write it like 'Content-Type: application/json'", labels: ["`headers`": "-H/--header"]),
            Bad(argv: ["http", "--expect-status", "700", "http://127.0.0.1:8080/"], yaml: "url: http://127.0.0.1:8080/\ncount: 1\nexpect_status: 700",
                message: "`expect_status` must be an HTTP status 100-599, got 700", labels: ["`expect_status`": "--expect-status"]),
            Bad(argv: ["http", "ftp://127.0.0.1/"], yaml: "url: ftp://127.0.0.1/\ncount: 1", message: nil, labels: [:]),
        ]),
        "load": KindCases(same: [
            Same(argv: ["load", "-c", "4", "-d", "3s", "-R", "100", "--warmup", "1s", "-t", "1", "-W", "1s", "--body", "5+6", "http://127.0.0.1:8080/"],
                 yaml: ["url: http://127.0.0.1:8080/\nconnections: 4\nduration: 3s\nrate: 100\nwarmup: 1s\nthreads: 1\ntimeout: 1s\nbody: 5+6"]),
            // Without -d or -n the command line runs 10 s (wrk's default); a suite must say so.
            Same(argv: ["load", "http://127.0.0.1:8080/"], yaml: ["url: http://127.0.0.1:8080/\nduration: 10s"]),
            Same(argv: ["load", "-n", "100", "http://127.0.0.1:8080/"], yaml: ["url: http://127.0.0.1:8080/\nrequests: 100"]),
        ], bad: [
            Bad(argv: ["load", "-c", "0", "http://127.0.0.1:8080/"], yaml: "url: http://127.0.0.1:8080/\nrequests: 1\nconnections: 0",
                message: "`connections` must be a positive integer, got \"0\"", labels: ["`connections`": "-c/--connections"]),
            Bad(argv: ["load", "-c", "20000", "http://127.0.0.1:8080/"], yaml: "url: http://127.0.0.1:8080/\nrequests: 1\nconnections: 20000",
                message: "`connections` is limited to 10000, got 20000", labels: ["`connections`": "-c/--connections"]),
            Bad(argv: ["load", "-d", "2h", "http://127.0.0.1:8080/"], yaml: "url: http://127.0.0.1:8080/\nduration: 2h",
                message: "`duration` is limited to 1h", labels: ["`duration`": "-d/--duration"]),
            Bad(argv: ["load", "-R", "-5", "http://127.0.0.1:8080/"], yaml: "url: http://127.0.0.1:8080/\nrequests: 1\nrate: -5",
                message: "`rate` must be a positive number, got \"-5\"", labels: ["`rate`": "-R/--rate"]),
        ]),
        "calc": KindCases(same: [
            Same(argv: ["calc", "--expr", "(5+6)*2", "-c", "2", "--expect", "22", "http://127.0.0.1:50000/calculate"],
                 yaml: ["url: http://127.0.0.1:50000/calculate\nexpression: \"(5+6)*2\"\ncount: 2\nexpect: 22\ninterval: 1s"]),
            Same(argv: ["calc", "--expr", "1.5*-4", "--expect", "-6"],
                 yaml: ["url: http://127.0.0.1:50000/calculate\nexpression: \"1.5*-4\"\nexpect: -6\ncount: 5\ninterval: 1s"]),
        ], bad: [
            Bad(argv: ["calc", "--expr", "1+"], yaml: "url: http://127.0.0.1:50000/calculate\ncount: 1\nexpression: \"1+\"",
                message: nil, labels: ["`expression`": "--expr"]),
            Bad(argv: ["calc", "--expr", "1+1", "--expect", "two"], yaml: "url: http://127.0.0.1:50000/calculate\ncount: 1\nexpression: 1+1\nexpect: two",
                message: "`expect` must be a number, got \"two\"", labels: ["`expect`": "--expect"]),
            Bad(argv: ["calc", "--expr", "1+1", "--rounds", "2", "--every", "90000s"],
                yaml: "url: http://127.0.0.1:50000/calculate\ncount: 1\nexpression: 1+1\nrounds: 2\nevery: 90000s",
                message: "`every` must be at most 24h (86400s), got 90000s", labels: ["`every`": "--every"]),
        ]),
        "startup": KindCases(same: [
            Same(argv: ["startup", "docker", "lxc", "-n", "3", "--ready", "tcp", "--port", "2222", "--timeout", "30s", "--image", "img:1",
                        "--command", "[\"sleep\",\"1\"]"],
                 yaml: ["backend: docker\nruns: 3\nready: tcp\nport: 2222\ntimeout: 30s\nimage: img:1\ncommand: [sleep, \"1\"]",
                        "backend: lxc\nruns: 3\nready: tcp\nport: 2222\ntimeout: 30s\nimage: img:1\ncommand: [sleep, \"1\"]"]),
            Same(argv: ["startup", "cmd", "--start", "[\"sleep\",\"1\"]", "--detached", "--var", "a=b", "--var", "c=d=e",
                        "--ready-command", "[\"true\"]", "--ready-output", "ok"],
                 yaml: ["backend: cmd\nstart: [sleep, \"1\"]\ndetached: true\nvars: [a=b, c=d=e]\nready_command: [\"true\"]\nready_output: ok"]),
            Same(argv: ["startup", "qemu", "--snapshot", "--ready", "tcp", "--accel", "tcg", "--host-port", "2000", "--kvm-probe-timeout", "3s"],
                 yaml: ["backend: qemu\nsnapshot: true\nready: tcp\naccel: tcg\nhost_port: 2000\nkvm_probe_timeout: 3s"]),
        ], bad: [
            Bad(argv: ["startup", "lxc", "--snapshot"], yaml: "backend: lxc\nsnapshot: true",
                message: "snapshot is supported for docker, podman and qemu only, not lxc", labels: [:]),
            Bad(argv: ["startup", "docker", "--port", "70000"], yaml: "backend: docker\nport: 70000",
                message: "`port` must be 1-65535, got 70000", labels: ["`port`": "--port"]),
            Bad(argv: ["startup", "cmd", "--start", "[\"true\"]", "--var", "x"], yaml: "backend: cmd\nstart: [\"true\"]\nvars: [x]",
                message: "`vars` entries must look like key=value, got \"x\"", labels: ["`vars`": "--var"]),
            Bad(argv: ["startup", "vbox"], yaml: "backend: vbox",
                message: "`backend` must be one of docker, lxc, qemu, cmd, podman, runc, crun, got \"vbox\"", labels: ["`backend`": "BACKEND"]),
            Bad(argv: ["startup", "docker", "-n", "0"], yaml: "backend: docker\nruns: 0",
                message: "`runs` must be a positive integer, got \"0\"", labels: ["`runs`": "-n"]),
        ]),
        "reach": KindCases(same: [
            Same(argv: ["reach", "two-subnet", "--expect", "e.csv"], yaml: ["topology: two-subnet\nexpect: e.csv"]),
            Same(argv: ["reach", "nat"], yaml: ["topology: nat"]),
        ], bad: [
            Bad(argv: ["reach", "nat", "--expect", "e.txt"], yaml: "topology: nat\nexpect: e.txt",
                message: "`expect` must be a .csv or .yaml file (columns from, to, probe, reachable), got \"e.txt\"", labels: ["`expect`": "--expect"]),
            Bad(argv: ["reach", "my topo"], yaml: "topology: my topo",
                message: "`topology` must be a topology name or file without spaces, got \"my topo\"", labels: ["`topology`": "NAME"]),
        ]),
        "footprint": KindCases(same: [
            Same(argv: ["footprint", "process", "docker", "-r", "300", "-d", "5s", "--idle", "2s", "-c", "8", "--port", "50002", "--restart",
                        "--restart-interval", "10ms", "--binary", "/bin/true"],
                 yaml: ["deployments: [process, docker]\nrate: 300\nduration: 5s\nidle: 2s\nconnections: 8\nport: 50002\nrestart: true\nrestart_interval: 10ms\nbinary: /bin/true"]),
            Same(argv: ["footprint", "--command", "[\"edgemeter\",\"serve\",\"calculator\",\"--role\",\"all\",\"--port\",\"{port}\"]", "--path", "/healthz",
                        "--image", "img:1"],
                 yaml: ["command: [edgemeter, serve, calculator, --role, all, --port, \"{port}\"]\npath: /healthz\nimage: img:1"]),
            Same(argv: ["footprint", "process", "lxc", "qemu", "--workload", "httpd"], yaml: ["deployments: [process, lxc, qemu]\nworkload: httpd"]),
            Same(argv: ["footprint", "process", "qemu"], yaml: ["deployments: [process, qemu]"]),
        ], bad: [
            Bad(argv: ["footprint", "vbox"], yaml: "deployments: [vbox]",
                message: "`deployments` must be process, docker, podman, lxc or qemu, got \"vbox\"", labels: ["`deployments`": "DEPLOYMENT"]),
            Bad(argv: ["footprint", "--restart-interval", "20ms"], yaml: "restart_interval: 20ms",
                message: "`restart_interval` must be more than 0 and at most 10ms", labels: ["`restart_interval`": "--restart-interval"]),
            Bad(argv: ["footprint", "--path", "sum"], yaml: "path: sum",
                message: "`path` must start with /, got \"sum\"", labels: ["`path`": "--path"]),
        ]),
        "capture": KindCases(same: [
            Same(argv: ["capture", "-i", "lo", "-f", "icmp", "--duration", "2s", "--snaplen", "128", "--buffer-size", "64", "--promiscuous"],
                 yaml: ["interface: lo\nfilter: icmp\nduration: 2s\nsnaplen: 128\nbuffer_kib: 64\npromiscuous: true"]),
            Same(argv: ["capture", "-i", "lo", "--duration", "1s", "icmp", "or", "tcp"], yaml: ["interface: lo\nduration: 1s\nfilter: icmp or tcp"]),
        ], bad: [
            Bad(argv: ["capture", "-i", "lo", "--duration", "1s", "--snaplen", "10"], yaml: "interface: lo\nduration: 1s\nsnaplen: 10",
                message: "`snaplen` must be between 64 and 262144 bytes, got 10", labels: ["`snaplen`": "--snaplen"]),
            Bad(argv: ["capture", "-i", "lo", "--duration", "0"], yaml: "interface: lo\nduration: 0",
                message: "`duration` must be more than 0", labels: ["`duration`": "--duration"]),
        ]),
        // The suite's `kind: migration` is `edgemeter migrate-demo` (its flags come from the declaration).
        "migration": KindCases(same: [
            Same(argv: ["migrate-demo", "--out", "/tmp/lb-unused", "--moves", "3", "--rate", "50", "--name", "abc", "--subnet", "10.1.2",
                        "--step-timeout", "30s", "--when-none-meets", "alert-only", "--image", "img:1"],
                 yaml: ["lab_name: abc\nsubnet: \"10.1.2\"\nrate: 50\nmoves: 3\nstep_timeout: 30s\nwhen_none_meets: alert-only\nimage: img:1"]),
            // The suite's lab name and /24 differ on purpose (never the same lab as a default migrate-demo).
            Same(argv: ["migrate-demo", "--out", "/tmp/lb-unused"], yaml: ["lab_name: mig-ec\nsubnet: \"10.231.13\""]),
        ], bad: [
            Bad(argv: ["migrate-demo", "--out", "/tmp/lb-unused", "--rate", "5"], yaml: "rate: 5",
                message: "`rate` must be 10-2000 requests/s, got 5", labels: ["`rate`": "--rate"]),
            Bad(argv: ["migrate-demo", "--out", "/tmp/lb-unused", "--name", "Big_Lab"], yaml: "lab_name: Big_Lab",
                message: "`lab_name` must be 1-12 lowercase letters, digits or '-', got \"Big_Lab\"", labels: ["`lab_name`": "--name"]),
            Bad(argv: ["migrate-demo", "--out", "/tmp/lb-unused", "--subnet", "192.168.1"], yaml: "subnet: \"192.168.1\"",
                message: "`subnet` must be 10.X.Y (a free /24 of 10/8), got \"192.168.1\"", labels: ["`subnet`": "--subnet"]),
            Bad(argv: ["migrate-demo", "--out", "/tmp/lb-unused", "--when-none-meets", "panic"], yaml: "when_none_meets: panic",
                message: "`when_none_meets` must be one of move-to-best, alert-only, got \"panic\"", labels: ["`when_none_meets`": "--when-none-meets"]),
        ]),
    ]

    func suiteYAML(_ kind: String, _ bodies: [String]) -> String {
        var yaml = "name: t\nscenarios:\n"
        for (i, body) in bodies.enumerated() {
            yaml += "  - name: s\(i + 1)\n    kind: \(kind)\n" + body.split(separator: "\n").map { "    " + $0 + "\n" }.joined()
        }
        return yaml
    }

    func testEveryKindHasCases() {
        let kinds = ScenarioKinds.all.map(\.declaration.kind)
        XCTAssertEqual(Set(table.keys), Set(kinds), "one table entry per scenario kind")
        for kind in kinds {
            XCTAssertGreaterThanOrEqual(table[kind]?.same.count ?? 0, 2, kind)
            XCTAssertGreaterThanOrEqual(table[kind]?.bad.count ?? 0, 2, kind)
        }
    }

    func testFlagsAndSuiteGiveTheSameConfiguration() throws {
        for (kind, cases) in table.sorted(by: { $0.key < $1.key }) {
            for c in cases.same {
                let cli = try runCommand(bin, c.argv + ["--print-config"])
                XCTAssertEqual(cli.status, 0, "\(c.argv): \(cli.stderr)")
                let file = out + "-\(kind).yaml"
                try suiteYAML(kind, c.yaml).write(toFile: file, atomically: true, encoding: .utf8)
                defer { try? FileManager.default.removeItem(atPath: file) }
                let suite = try runCommand(bin, ["run", file, "--print-config"])
                XCTAssertEqual(suite.status, 0, "\(kind) \(c.yaml): \(suite.stderr)")
                let lines = cli.stdout.split(separator: "\n")
                XCTAssertEqual(lines.count, c.yaml.count, "one configuration per scenario: \(cli.stdout)")
                XCTAssertEqual(cli.stdout, suite.stdout, "\(c.argv.joined(separator: " ")) vs\n\(c.yaml.joined(separator: "\n---\n"))")
            }
        }
    }

    func testBadValuesGetTheSameMessageFromBothPaths() throws {
        for (kind, cases) in table.sorted(by: { $0.key < $1.key }) {
            for b in cases.bad {
                var suiteMessage = ""
                XCTAssertThrowsError(try SuiteLoader.load(yaml: suiteYAML(kind, [b.yaml]), file: "suite.yaml", schemas: ScenarioKinds.schemas),
                                     b.yaml) { e in
                    let text = "\(e)"
                    guard let r = text.range(of: "scenario \"s1\": ") else { return XCTFail("not located in the scenario: \(text)") }
                    XCTAssertTrue(text.hasPrefix("suite.yaml:"), text)
                    XCTAssertFalse(text.contains("\n"), "one problem: \(text)")
                    suiteMessage = String(text[r.upperBound...])
                }
                if let expected = b.message { XCTAssertEqual(suiteMessage, expected, b.yaml) }
                var cliMessage = suiteMessage
                for (suiteLabel, flag) in b.labels { cliMessage = cliMessage.replacingOccurrences(of: suiteLabel, with: flag) }
                let r = try runCommand(bin, b.argv + ["--print-config"])
                XCTAssertEqual(r.status, 2, "\(b.argv): \(r.stdout) \(r.stderr)")
                let errorLine = r.stderr.split(separator: "\n").first { $0.hasPrefix("Error: ") }.map { String($0.dropFirst("Error: ".count)) }
                XCTAssertEqual(errorLine, cliMessage, "\(b.argv.joined(separator: " ")): \(r.stderr)")
            }
        }
    }

    /// Where the CLI and the suite default differ, the declaration says why (the README repeats it).
    func testDifferentDefaultsAreExplained() {
        var differing: [String] = []
        for d in ScenarioKinds.declarations {
            for p in d.parameters where p.cli != nil && p.inSuite && p.cliDefault != p.suiteDefault {
                differing.append("\(d.kind).\(p.key)")
                XCTAssertNotNil(p.defaultsDiffer, "\(d.kind).\(p.key): the defaults differ without a reason")
            }
            for p in d.parameters {
                XCTAssertFalse(p.help.isEmpty, "\(d.kind).\(p.key) has no help text")
            }
        }
        XCTAssertTrue(differing.contains("ping.interval"), "\(differing)")
    }
}
