# The flake's module (its package from the flake's own nixpkgs, not the host's) with a second
# instance that keeps its default `package`: the instance inherits the top-level package, one
# package ships the units, and generateUnits finds no collision (A3).
{ config, nixEval, ... }:
let
  cfg = config.services.paratime-node;
in
{
  imports = [ nixEval.flake.nixosModules.default ];
  services.paratime-node = {
    enable = true;
    settings.genesis.file = ./files/genesis.json;
    instances.second = {
      enable = true;
      settings = {
        genesis.file = ./files/genesis.json;
        p2p.port = 9300;
      };
    };
  };
  assertions = [
    {
      assertion = cfg.instances.second.package == cfg.package && config.systemd.packages == [ cfg.package ];
      message = "scenario: the instance should use the top-level package, and only it should ship units";
    }
  ];
}
