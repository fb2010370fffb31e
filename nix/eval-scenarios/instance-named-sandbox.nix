# Instances named `sandbox` or `sandbox-*` would share /run and /var/lib directories with the
# sandbox launcher of another instance (W10); a name with other characters (`.`, here) is
# refused too.
# expect-assertion: services.paratime-node.instances.sandbox: the instance name must be
# expect-assertion: services.paratime-node.instances.sandbox-x: the instance name must be
# expect-assertion: services.paratime-node.instances.a.b: the instance name must be
{ nixEval, ... }:
let
  instance = port: {
    enable = true;
    settings = {
      genesis.file = ./files/genesis.json;
      p2p.port = port;
    };
  };
in
{
  imports = [ nixEval.flake.nixosModules.default ];
  services.paratime-node.instances = {
    sandbox = instance 9300;
    sandbox-x = instance 9301;
    "a.b" = instance 9302;
  };
}
