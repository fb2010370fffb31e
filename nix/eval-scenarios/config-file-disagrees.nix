# configFile whose p2p.port (9300) is not declared in `settings` (the module would assume 9200):
# the build-time agreement check fails and names the fix (W5). scripts/nix-check.sh runs the
# check's script.
# expect-check-failure: configFile: p2p.port is 9300, but the firewall and the port checks use 9200
{ nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ];
  services.paratime-node = {
    enable = true;
    configFile = ./files/config.yml;
    checkConfig = false;
  };
}
