# With AppArmor, an instance with another package than the top-level one is refused (the
# profiles name one binary and one bubblewrap, W2).
# expect-assertion: services.paratime-node.instances.other: with security.apparmor.enable, every instance must use the top-level
{ nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ];
  security.apparmor.enable = true;
  services.paratime-node.instances.other = {
    enable = true;
    package = nixEval.mkDrv {
      name = "paratime-node-patched";
      mainProgram = "paratime-node";
    };
    settings.genesis.file = ./files/genesis.json;
  };
}
