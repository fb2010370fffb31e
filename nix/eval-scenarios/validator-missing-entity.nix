# A validator without its entity descriptor, in an instance: the message names the instance.
# expect-assertion: services.paratime-node.instances.val: validator mode needs the operator's entity descriptor in `entity`.
{ nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ];
  services.paratime-node.instances.val = {
    enable = true;
    mode = "validator";
    settings.genesis.file = ./files/genesis.json;
  };
}
