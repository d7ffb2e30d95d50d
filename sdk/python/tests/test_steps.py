"""The SDK's pure parts (no component bindings), run by
tests/tests/sdk_unit.rs: step declarations, argument checks, errors."""

import unittest

from ironic_hardware import InvalidArgument, ProcessExecutionError, Unsupported, step
from ironic_hardware import steps


class Vendor:
    @step(("clean", "service"), interface="management", abortable=True,
          args={"version": {"description": "version", "required": True},
                "force": "skip checks"})
    def flash(self, node, ports, version, force=False):
        return {"version": version, "force": force, "node": node}


class StepTest(unittest.TestCase):
    def test_listing_and_argsinfo(self):
        specs = steps.collect(Vendor)
        listed = steps.listing(specs, "clean")
        self.assertEqual([s.name for s in listed], ["flash"])
        self.assertEqual(listed[0].argsinfo(),
                         [("version", "version", True), ("force", "skip checks", False)])
        self.assertEqual(steps.listing(specs, "deploy"), [])

    def test_dispatch_checks_arguments_first(self):
        specs = steps.collect(Vendor)
        self.assertEqual(
            steps.run(Vendor(), specs, "service", "flash", {"uuid": "n"}, [], {"version": "2"}),
            {"version": "2", "force": False, "node": {"uuid": "n"}})
        with self.assertRaisesRegex(InvalidArgument, "missing required argument version"):
            steps.run(Vendor(), specs, "clean", "flash", {}, [], {})
        with self.assertRaisesRegex(InvalidArgument,
                                    "unknown argument bogus; its arguments are: version, force"):
            steps.run(Vendor(), specs, "clean", "flash", {}, [], {"version": "2", "bogus": 1})
        with self.assertRaises(Unsupported):
            steps.run(Vendor(), specs, "deploy", "flash", {}, [], {})

    def test_bad_declarations_fail_at_import(self):
        with self.assertRaisesRegex(TypeError, "kind must be one of"):
            step("cleaning")(lambda self, node, ports: None)
        with self.assertRaisesRegex(TypeError, "does not accept the declared argument"):
            step(args={"x": "an x"})(lambda self, node, ports: None)

    def test_errors(self):
        e = ProcessExecutionError(["tool", "-x"], 3, "out\n", "err\n")
        self.assertEqual(str(e), "tool -x exited with 3; stdout: out; stderr: err")
        self.assertEqual(steps.parse_args(""), {})
        with self.assertRaises(InvalidArgument):
            steps.parse_args("[1]")


if __name__ == "__main__":
    unittest.main()
