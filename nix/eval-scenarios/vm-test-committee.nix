# The committee VM test's compute node (nix/tests), evaluated without building anything: it
# reads no build output during evaluation (W11: its validator's key reaches the node through an
# EnvironmentFile at run time), and the test installs keys for the module's user `paratime` (W1).
{ lib, nixEval, ... }:
let
  flake = nixEval.flake;
  tests = import ../tests {
    pkgs = nixEval.pkgs // {
      testers.runNixOSTest = test: test;
    };
    module = ../module.nix;
    package = flake.packages.x86_64-linux.default;
    bundle = flake.packages.x86_64-linux.kvstore-bundle;
  };
in
{
  imports = [ tests.committee.nodes.compute ];
  assertions = [
    {
      assertion = lib.hasInfix "install -o paratime -g paratime " tests.committee.testScript;
      message = "scenario: the committee test should install the keys for the user paratime";
    }
  ];
}
