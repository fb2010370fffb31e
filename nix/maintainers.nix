# Who answers for the package and the NixOS module (`meta.maintainers` of both), in the shape of
# nixpkgs' lib.maintainers entries. Replace with lib.maintainers handles if this is upstreamed.
[
  {
    name = "paratime-node developers";
    github = "paratime-node";
  }
]
