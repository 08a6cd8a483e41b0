// The built-in recipes, registered under the names SlapOS profiles use (docs/recipes.md).
import './cmmi.js';
import './command.js';
import './cookbook.js';
import './download.js';
import './instance.js';
import './template.js';
