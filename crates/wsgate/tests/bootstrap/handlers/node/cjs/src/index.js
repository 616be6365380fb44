'use strict';
const path = require('path');

exports.handler = async (event) => ({ where: path.basename(__dirname), body: event.body });
