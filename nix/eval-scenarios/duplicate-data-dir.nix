# Two instances on one data directory.
# expect-assertion: services.paratime-node: two instances share a data directory (settings.common.data_dir).
{ nixEval, ... }:
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
        common.data_dir = "/var/lib/paratime-node/data";
      };
    };
  };
}
