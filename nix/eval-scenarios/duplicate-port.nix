# Two instances on the same p2p port.
# expect-assertion: services.paratime-node: two instances use the same settings.p2p.port: 9200 9200.
{ nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ];
  services.paratime-node = {
    enable = true;
    settings.genesis.file = ./files/genesis.json;
    instances.second = {
      enable = true;
      settings.genesis.file = ./files/genesis.json;
    };
  };
}
