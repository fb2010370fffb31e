# Two instances serving metrics on the same address are refused.
# expect-assertion: services.paratime-node: two instances serve metrics on the same address (metrics.address): 127.0.0.1:3000 127.0.0.1:3000.
{ nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ];
  services.paratime-node = {
    enable = true;
    settings.genesis.file = ./files/genesis.json;
    metrics.enable = true;
    instances.second = {
      enable = true;
      settings = {
        genesis.file = ./files/genesis.json;
        p2p.port = 9300;
        consensus.listen_address = "tcp://0.0.0.0:26756";
      };
      metrics.enable = true;
    };
  };
}
