# The sample key-value ParaTime as an .orc bundle, built with `paratime-node bundle build`.
{ runCommand
, paratime-node
, runtimeId ? "0000000000000000000000000000000000000000000000000000000000000001"
,
}:

runCommand "paratime-kvstore-${paratime-node.version}.orc"
{
  nativeBuildInputs = [ paratime-node ];
  passthru = { inherit runtimeId; };
}
  ''
    paratime-node bundle build \
      --executable ${paratime-node}/bin/paratime-kvstore \
      --name kvstore \
      --runtime-id ${runtimeId} \
      --version ${paratime-node.version} \
      --output $out
    paratime-node bundle verify $out
  ''
