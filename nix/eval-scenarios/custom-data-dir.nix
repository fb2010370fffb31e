# A data_dir outside /var/lib/paratime-node (W4): the node's unit gets it writable
# (ReadWritePaths), the sandbox launcher gets its bundles directory bound read-only and the rest
# of it hidden, and tmpfiles creates it (0700, the node's) and the shipped subdirectories in it.
{ config, lib, nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ];
  services.paratime-node = {
    enable = true;
    settings = {
      genesis.file = ./files/genesis.json;
      common.data_dir = "/srv/paratime/data";
    };
  };
  assertions = [
    {
      assertion = lib.elem "d /srv/paratime/data 0700 paratime paratime -" config.systemd.tmpfiles.rules
        && config.systemd.services.paratime-node.serviceConfig.ReadWritePaths == [ "/srv/paratime/data" ];
      message = "scenario: the custom data dir should be created and writable";
    }
  ];
}
