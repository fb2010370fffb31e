# The module alone, with the flake's overlays.default: `package` defaults to pkgs.paratime-node
# (mkPackageOption), and that one package ships the units.
{ config, lib, nixEval, ... }:
let
  pkgs = nixEval.pkgs // nixEval.flake.overlays.default pkgs nixEval.pkgs;
in
{
  _module.args.pkgs = lib.mkForce pkgs;
  services.paratime-node = {
    enable = true;
    settings.genesis.file = ./files/genesis.json;
  };
  assertions = [
    {
      assertion = config.services.paratime-node.package == pkgs.paratime-node
        && config.systemd.packages == [ pkgs.paratime-node ];
      message = "scenario: the package should default to pkgs.paratime-node from the overlay";
    }
  ];
}
