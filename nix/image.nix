# A bootable, reproducible NixOS disk image with a preconfigured paratime-node, built with
# nixpkgs' own image support (image.repart). Build: `nix build .#image`.
#
# Reproducible: fixed partition UUIDs and repart seed, no timestamps (SOURCE_DATE_EPOCH is the
# store's), no host paths. Check: build twice and compare,
#   nix build .#image && cp -L result/*.raw /tmp/a.raw
#   nix build .#image --rebuild && cmp /tmp/a.raw result/*.raw   (or: nix build --rebuild)
{ config
, lib
, modulesPath
, pkgs
, ...
}:

let
  efiArch = pkgs.stdenv.hostPlatform.efiArch;
  bundle = pkgs.callPackage ./kvstore-bundle.nix {
    paratime-node = config.services.paratime-node.package;
  };
in
{
  imports = [
    "${modulesPath}/image/repart.nix"
    "${modulesPath}/profiles/minimal.nix"
  ];

  system.stateVersion = "25.11"; # the release of the pinned nixpkgs (a fresh image)
  networking.hostName = "paratime-node";

  services.paratime-node = {
    enable = true;
    mode = "client";
    runtimes = [ bundle ];
    settings.genesis.file = "${pkgs.writeText "genesis.json" "{}"}";
    openFirewall = true;
  };

  boot.loader.grub.enable = false;
  boot.loader.systemd-boot.enable = true;
  fileSystems."/" = {
    device = "/dev/disk/by-partlabel/root";
    fsType = "ext4";
  };
  fileSystems."/boot" = {
    device = "/dev/disk/by-partlabel/esp";
    fsType = "vfat";
  };

  image.repart = {
    name = "paratime-node";
    # Fixed seed: partition UUIDs and filesystem UUIDs are derived from it, not random.
    seed = "5c3e6b0e-2c9a-4d53-a8d1-f0e3b7a2c400";
    partitions = {
      esp = {
        contents = {
          "/EFI/BOOT/BOOT${lib.toUpper efiArch}.EFI".source =
            "${pkgs.systemd}/lib/systemd/boot/efi/systemd-boot${efiArch}.efi";
          "/EFI/Linux/${config.system.boot.loader.ukiFile}".source =
            "${config.system.build.uki}/${config.system.boot.loader.ukiFile}";
        };
        repartConfig = {
          Type = "esp";
          Label = "esp";
          Format = "vfat";
          SizeMinBytes = "256M";
        };
      };
      root = {
        storePaths = [ config.system.build.toplevel ];
        repartConfig = {
          Type = "root";
          Label = "root";
          Format = "ext4";
          Minimize = "guess";
        };
      };
    };
  };
}
