/** The one place the models call attention: @typeformer/attention's implementation registry. */
export { scaledDotProductAttention as attend } from "@typeformer/attention";
