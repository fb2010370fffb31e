# A consensus listen address without a port gets a message, not a raw toInt error (W9).
# expect-assertion: settings.consensus.listen_address = "tcp://0.0.0.0" has no port; write it as tcp://IP:PORT
{ nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ];
  services.paratime-node = {
    enable = true;
    settings = {
      genesis.file = ./files/genesis.json;
      consensus.listen_address = "tcp://0.0.0.0";
    };
  };
}
