// The built-in recipes, registered under the names SlapOS profiles use (docs/recipes.md).
export {};
import './cmmi.js';
import './download.js';
import './instance.js';
import './template.js';
import './cookbook.js';
import './command.js';
