# One per-module log level keeps `default: info` (W8).
{ config, nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ];
  services.paratime-node = {
    enable = true;
    settings = {
      genesis.file = ./files/genesis.json;
      common.log.level."runtime/host" = "debug";
    };
  };
  assertions = [
    {
      assertion = config.services.paratime-node.settings.common.log.level == {
        default = "info";
        "runtime/host" = "debug";
      };
      message = "scenario: setting one module's level should keep default = info";
    }
  ];
}
