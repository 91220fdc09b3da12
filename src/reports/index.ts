export { ReportGenerator } from './report-generator.js';
