# User namespaces switched off by sysctl.
# expect-assertion: services.paratime-node: the sandbox needs user namespaces, but boot.kernel.sysctl."user.max_user_namespaces" is 0.
{ nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ];
  boot.kernel.sysctl."user.max_user_namespaces" = 0;
  services.paratime-node = {
    enable = true;
    settings.genesis.file = ./files/genesis.json;
  };
}
