# A data_dir that is relative, has a `..` part or characters the unit settings would have to
# quote is refused (W4).
# expect-assertion: services.paratime-node: settings.common.data_dir = "/srv/../etc/data" must be an absolute path
{ nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ];
  services.paratime-node = {
    enable = true;
    settings = {
      genesis.file = ./files/genesis.json;
      common.data_dir = "/srv/../etc/data";
    };
  };
}
