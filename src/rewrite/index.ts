export { DeliveryStatusRewriter } from './rewriter.js';
