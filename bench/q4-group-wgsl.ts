/**
 * The q4 decode GEMV's group step in raw WGSL, shared by the layout experiments (bench/gemv-layouts.ts,
 * bench/gemv-uniform-codes.ts): codes8 turns 8 signed 4-bit codes into floats by a shift pair each (as gemv_rows'
 * `codes_of` does), group_dot sums one row's 32 codes against x spread over an 8-lane subgroup (lane i holds
 * x[4i..4i+3]), unscaled.
 */
export const Q4_GROUP_DOT_WGSL = `
fn codes8(w: i32) -> mat2x4<f32> {
  let v = vec4<i32>(w);
  return mat2x4<f32>(vec4<f32>((v << vec4<u32>(28u, 24u, 20u, 16u)) >> vec4<u32>(28u)), vec4<f32>((v << vec4<u32>(12u, 8u, 4u, 0u)) >> vec4<u32>(28u)));
}
fn group_dot(q: vec4<u32>, xv: vec4<f32>) -> f32 {
  let c0 = codes8(bitcast<i32>(q.x)); let c1 = codes8(bitcast<i32>(q.y)); let c2 = codes8(bitcast<i32>(q.z)); let c3 = codes8(bitcast<i32>(q.w));
  return dot(subgroupBroadcast(xv, 0u), c0[0]) + dot(subgroupBroadcast(xv, 1u), c0[1]) + dot(subgroupBroadcast(xv, 2u), c1[0]) + dot(subgroupBroadcast(xv, 3u), c1[1]) +
         dot(subgroupBroadcast(xv, 4u), c2[0]) + dot(subgroupBroadcast(xv, 5u), c2[1]) + dot(subgroupBroadcast(xv, 6u), c3[0]) + dot(subgroupBroadcast(xv, 7u), c3[1]);
}
`;
