# The smallest enabled configuration, through the flake's module: the canonical instance with a
# genesis document given as a path literal (copied into the store, so the build-time check and
# the system closure have it: A2, W3).
{ nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ];
  services.paratime-node = {
    enable = true;
    settings.genesis.file = ./files/genesis.json;
  };
}
