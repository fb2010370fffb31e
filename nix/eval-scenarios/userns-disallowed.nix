# User namespaces switched off by security.allowUserNamespaces.
# expect-assertion: services.paratime-node: the sandbox needs user namespaces; set security.allowUserNamespaces = true.
{ nixEval, ... }:
{
  imports = [ nixEval.flake.nixosModules.default ];
  security.allowUserNamespaces = false;
  services.paratime-node = {
    enable = true;
    settings.genesis.file = ./files/genesis.json;
  };
}
