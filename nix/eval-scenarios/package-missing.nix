# The module alone, without the overlay or the flake's module: the missing package is named.
# expect-error: paratime-node cannot be found in pkgs
{
  services.paratime-node = {
    enable = true;
    settings.genesis.file = ./files/genesis.json;
  };
}
