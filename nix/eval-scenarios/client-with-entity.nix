# A client node with an entity descriptor is refused.
# expect-assertion: services.paratime-node: a client node must not have an `entity`; use compute mode.
{ nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ];
  services.paratime-node = {
    enable = true;
    entity = ./files/entity.json;
    settings.genesis.file = ./files/genesis.json;
  };
}
